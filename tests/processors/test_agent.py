"""Which partitions' idle sessions may close (pure). Found by the chaos run: a worker restarted
behind a backlog closed sessions whose frames were still waiting in Kafka, so each such face got
two sessions and two summaries."""

from __future__ import annotations

from processors.agent import quiet_partitions

GAP = 5_000


def test_a_partition_with_frames_waiting_is_not_quiet():
    now = 1_000_000
    progress = {0: (1500, 1500), 1: (1500, 797), 2: (None, 40)}  # caught up; a backlog; end unknown
    assert quiet_partitions(progress, now, rebalanced_ms=now - 60_000, gap_ms=GAP) == {0}


def test_a_partition_not_read_since_the_rebalance_waits_longer_than_a_gap():
    now = 1_000_000
    progress = {3: (900, None)}  # restored sessions, no frame processed yet: its backlog may come
    assert quiet_partitions(progress, now, rebalanced_ms=now - 2 * GAP, gap_ms=GAP) == set()
    assert quiet_partitions(progress, now, rebalanced_ms=now - 29_000, gap_ms=GAP) == set()
    assert quiet_partitions(progress, now, rebalanced_ms=now - 31_000, gap_ms=GAP) == {3}
    # With long gaps, six of them.
    assert quiet_partitions(progress, now, rebalanced_ms=now - 31_000, gap_ms=10_000) == set()
