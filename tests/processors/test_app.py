"""The worker's Faust app and what it does to Faust's own bookkeeping (pure: no broker)."""

from __future__ import annotations

import asyncio

from faust.types.tuples import TP

from infra.settings import Settings
from processors.app import ack_read_back, create_app


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
