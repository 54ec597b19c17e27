"""The worker's Faust app and what it does to Faust's own bookkeeping (pure: no broker)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from faust.types.tuples import TP, ConsumerMessage

from infra.settings import Settings
from processors.app import ack_read_back, create_app, withhold_acks


def test_offsets_read_back_past_a_skip_let_faust_commit_again():
    """Found by the chaos run: after a restart Faust's stream delivered partition 2 from offset
    2684 while 2676 was committed; the frames between were read back and processed, but Faust,
    which never saw them, would not commit past 2676 again, for the rest of the run."""

    async def run() -> tuple[int | None, int | None]:
        app = create_app(Settings(frames_topic="t.frames"))
        consumer, tp = app.consumer, TP("t.frames", 2)
        consumer._committed_offset[tp] = 2676
        for offset in range(2684, 2690):  # what the stream delivered and the agent acknowledged
            consumer._acked_index[tp].add(offset)
            consumer._acked[tp].append(offset)
        stuck = consumer._new_offset(tp)
        ack_read_back(app, "t.frames", 2, range(2676, 2684))
        return stuck, consumer._new_offset(tp)

    stuck, after = asyncio.run(run())
    assert stuck is None, "Faust's own rule: no commit across offsets it never acknowledged"
    assert after == 2690, "with the read-back offsets acknowledged, it commits past them all"


def test_a_withheld_batch_is_never_committed_past():
    """A batch left unfinished (the worker stopping mid-retry) is acknowledged by Faust's
    take_events when the agent leaves it; withheld, those acks change nothing."""

    async def run() -> tuple[int | None, int | None]:
        app = create_app(Settings(frames_topic="t.frames"))
        consumer, tp = app.consumer, TP("t.frames", 1)
        consumer._committed_offset[tp] = 40
        app.topics._acking_topics.add("t.frames")  # as the running app's conductor has it
        messages = [ConsumerMessage("t.frames", 1, offset, 0.0, 0, None, b"k", b"v", None, tp=tp)
                    for offset in range(40, 44)]
        for m in messages:
            m.refcount = 1  # one stream holds each, as in the agent
        withhold_acks([SimpleNamespace(message=m) for m in messages[:2]])  # 40-41 unfinished
        for m in messages:  # what take_events' finally does with every event of the batch
            m.ack(consumer)
        assert sorted(consumer._acked[tp]) == [42, 43], "only the finished events count"
        withheld = consumer._new_offset(tp)
        ack_read_back(app, "t.frames", 1, range(40, 42))  # processed later (read back after a restart)
        return withheld, consumer._new_offset(tp)

    withheld, after = asyncio.run(run())
    assert withheld is None, "no commit across the withheld offsets 40-41"
    assert after == 44
