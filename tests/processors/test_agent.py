"""The agent's batches: which partitions' idle sessions may close (pure), and a batch that fails
(a real worker against a real broker that refuses its results for a while).

Idle sessions, found by the chaos run: a worker restarted behind a backlog closed sessions whose
frames were still waiting in Kafka, so each such face got two sessions and two summaries; at load,
an overloaded worker that had read nothing of a partition for 30 s after its restart did the same
to every face of it."""

from __future__ import annotations

import signal
import time

import pytest

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


def _refused_batches(s, worker, frames, refuse_over, retries: int) -> None:
    """Publish ``frames`` while the broker refuses results; return once the worker has tried again
    ``retries`` times."""
    from producers.publish import Publisher

    refuse_over(s, s.results_topic, 100)  # a result is a few KB: every batch of results is refused
    publisher = Publisher(s)
    for f in frames:
        publisher.send(f)
    publisher.close()
    deadline = time.monotonic() + 60
    while worker.output().count("trying it again") < retries and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker.output().count("trying it again") >= retries, worker.output()[-3000:]


def _results_of(s, collect, frames) -> dict:
    sid = frames[0].session_id
    results, _ = collect(s, lambda r, sm: {x.seq for x in r if x.session_id == sid} >= {f.seq for f in frames},
                         timeout_s=90)
    mine = {x.seq: x for x in results if x.session_id == sid}
    assert set(mine) == {f.seq for f in frames}, "every frame has a result"
    return mine


@pytest.mark.integration
def test_a_batch_whose_results_the_broker_refuses_is_tried_again_until_it_lands(
        make_settings, start_worker, collect, wolfgang_frames, refuse_over):
    """Found by the chaos run: a batch that raised (its results not delivered) was acknowledged by
    Faust all the same, and committed past: its frames never got a result."""
    s = make_settings(session_gap_s=120.0)
    worker = start_worker(s)
    frames = [f for f in wolfgang_frames if f.track_id == 0][:100]
    _refused_batches(s, worker, frames, refuse_over, retries=2)
    refuse_over(s, s.results_topic, 16 << 20)

    mine = _results_of(s, collect, frames)
    # Tried again from the state the batch started from: each frame counted once in its session.
    assert sorted(x.session_frame for x in mine.values()) == list(range(len(frames)))
    assert "Crashed" not in worker.output() and worker.proc.poll() is None


@pytest.mark.integration
def test_a_worker_stopped_while_its_batch_is_refused_leaves_the_batch_to_the_next_one(
        make_settings, start_worker, collect, wolfgang_frames, refuse_over):
    """Faust acknowledges the batch in hand when a stopping worker cancels its agent, and commits
    before it exits: unless those acks are withheld, the next worker starts past frames that never
    got a result."""
    s = make_settings(session_gap_s=120.0, worker_instance_id="worker-0")
    first = start_worker(s)
    frames = [f for f in wolfgang_frames if f.track_id == 0][:60]
    _refused_batches(s, first, frames, refuse_over, retries=1)
    first.kill(signal.SIGTERM)  # a clean stop, in the middle of the retries
    refuse_over(s, s.results_topic, 16 << 20)

    start_worker(s)
    _results_of(s, collect, frames)
