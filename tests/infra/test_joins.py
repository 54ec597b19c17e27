"""Group joins with short polls: a join that completed between two polls is taken up again."""

from __future__ import annotations

import time
import uuid

import pytest

from infra.joins import JoinTracker, repair_orphaned_join
from infra.pacing import Pacer, paced_poll


@pytest.mark.integration
def test_a_join_left_behind_between_two_polls_is_repaired(bootstrap):
    from kafka import KafkaConsumer
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import RebalanceInProgressError

    topic = f"joins-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    admin.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=f"joins-{uuid.uuid4().hex[:8]}",
                             enable_auto_commit=False)
    joins = JoinTracker()
    consumer.subscribe([topic], listener=joins)
    pacer = Pacer(max_pause_s=0.01)
    try:
        deadline = time.monotonic() + 20
        while joins.joining and time.monotonic() < deadline:
            paced_poll(consumer, pacer, 10, 500, joins)
        assert not joins.joining and joins.joins == 1
        consumer.commit()

        # The way the store sinks got stuck: the group's metadata changes (here: made to look
        # so), a one-millisecond poll starts the join, and the join completes before the next
        # poll. Being the leader, the member records the new metadata as assigned while doing
        # so; nothing asks for a rejoin any more, and the completed join is never taken up.
        consumer._coordinator._assignment_snapshot = {}
        consumer.poll(timeout_ms=1)
        assert joins.joining, "the join started (partitions revoked)"
        time.sleep(1.0)  # it completes in the client's I/O thread, outside any poll
        for _ in range(20):
            consumer.poll(timeout_ms=1)
        assert joins.joining, "left behind: no assignment follows"
        with pytest.raises(RebalanceInProgressError):
            consumer.commit()

        assert repair_orphaned_join(consumer)
        deadline = time.monotonic() + 20
        while joins.joining and time.monotonic() < deadline:
            paced_poll(consumer, pacer, 10, 500, joins)
        assert not joins.joining and joins.joins == 2
        consumer.commit()  # a member of the group again
        assert not repair_orphaned_join(consumer), "nothing left behind now"
    finally:
        consumer.close(autocommit=False, timeout_ms=2000)
