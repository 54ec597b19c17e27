"""Which partitions' idle sessions may close (pure). Found by the chaos run: a worker restarted
behind a backlog closed sessions whose frames were still waiting in Kafka, so each such face got
two sessions and two summaries; at load, an overloaded worker that had read nothing of a
partition for 30 s after its restart did the same to every face of it."""

from __future__ import annotations

from processors.agent import quiet_partitions


def test_a_partition_with_frames_waiting_is_not_quiet():
    progress = {0: (1500, 1500), 1: (1500, 797), 2: (None, 40)}  # caught up; a backlog; end unknown
    assert quiet_partitions(progress) == {0}


def test_a_partition_not_read_since_the_rebalance_is_judged_from_its_committed_offset():
    # Nothing processed since the restart: the next offset is where the group committed. Frames
    # waiting past it keep the partition busy however long the worker takes to reach them.
    assert quiet_partitions({3: (900, 640)}) == set()
    assert quiet_partitions({3: (900, 900)}) == {3}, "nothing arrived since the commit"
    assert quiet_partitions({3: (900, None)}) == set(), "no commit known: never close on a guess"
