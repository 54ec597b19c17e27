"""Topic creation and removal against a real broker."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.structs import OffsetAndMetadata

from infra.topics import changelog_topic, ensure_topics, owned_prefixes, remove_topics, topic_specs

pytestmark = pytest.mark.integration


def _topics(bootstrap: str) -> set[str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def test_ensure_topics_creates_what_is_missing_once(make_settings):
    s = make_settings()  # creates them
    assert set(topic_specs(s)) <= _topics(s.bootstrap)
    assert ensure_topics(s) == []


def test_remove_topics_deletes_one_runs_topics_and_offsets_and_nothing_else(make_settings):
    s, other = make_settings(), make_settings()
    producer = KafkaProducer(bootstrap_servers=s.bootstrap)
    for _ in range(20):
        producer.send(s.frames_topic, b"x" * 1000, partition=0)
    producer.flush()
    producer.close()
    tp = TopicPartition(s.frames_topic, 0)
    consumer = KafkaConsumer(bootstrap_servers=s.bootstrap, group_id=s.app_id, enable_auto_commit=False)
    consumer.commit({tp: OffsetAndMetadata(10, "", -1)})
    assert consumer.committed(tp) == 10
    consumer.close()

    removed = remove_topics(s.bootstrap, owned_prefixes(s), [s.app_id])

    assert set(removed) == set(topic_specs(s)) and changelog_topic(s.app_id) in removed
    left = _topics(s.bootstrap)
    assert not {t for t in left if t.startswith(owned_prefixes(s))}
    assert set(topic_specs(other)) <= left  # another run's topics stay
    consumer = KafkaConsumer(bootstrap_servers=s.bootstrap, group_id=s.app_id, enable_auto_commit=False)
    assert consumer.committed(tp) is None  # the group's offsets went with it
    consumer.close()
    assert remove_topics(s.bootstrap, owned_prefixes(s), [s.app_id]) == []  # nothing left: a no-op
