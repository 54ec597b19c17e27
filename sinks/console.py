"""A live console view of the results topic: one line per face per second, plus summaries."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from kafka import KafkaConsumer
from rich.console import Console

from infra.pacing import Pacer, paced_poll
from infra.settings import Settings
from schemas import FACE_RESULT, SESSION_SUMMARY, FaceResult, PayloadError, SessionSummary, peek_header
from schemas.codec import decode
from schemas.vocabulary import CUES as CUE_FIELDS
from schemas.vocabulary import EMOTIONS


@dataclass
class _Second:
    frames: int = 0
    sums: list[float] = field(default_factory=lambda: [0.0] * len(CUE_FIELDS))
    emotions: list[float] = field(default_factory=lambda: [0.0] * len(EMOTIONS))
    last: FaceResult | None = None

    def add(self, r: FaceResult) -> None:
        self.frames += 1
        self.sums = [s + getattr(r, f) for s, f in zip(self.sums, CUE_FIELDS)]
        if len(r.emotions) == len(EMOTIONS):
            self.emotions = [a + b for a, b in zip(self.emotions, r.emotions)]
        self.last = r


def format_second(key: str, sec: _Second) -> str:
    r = sec.last
    assert r is not None
    cues = "  ".join(f"{f[:5]} {s / sec.frames:.2f}" for f, s in zip(CUE_FIELDS, sec.sums))
    top = max(range(len(EMOTIONS)), key=sec.emotions.__getitem__)
    emotion = f"{EMOTIONS[top]} {sec.emotions[top] / sec.frames:.2f}" if any(sec.emotions) else "-"
    return (f"{key:<18} {sec.frames:>3} fr  {emotion:<13} {cues}  phase {r.engagement_phase:<11} "
            f"status {r.interaction_status:<21} yaw {r.yaw:+5.1f}  blinks {r.blinks}")


def format_summary(s: SessionSummary) -> str:
    return (f"[bold]session {s.face_key} closed[/]: {s.frames} frames over "
            f"{(s.ended_ms - s.started_ms) / 1000:.1f} s, mean amusement {s.mean_amusement:.2f}, "
            f"surprise {s.mean_surprise:.2f}, confusion {s.mean_confusion:.2f}, attention "
            f"{s.mean_attention:.2f}, engagement {s.mean_engagement:.2f}, engaged "
            f"{s.engaged_s:.1f} s, {s.blinks} blinks")


def watch(
    settings: Settings,
    *,
    session_id: str | None = None,
    from_beginning: bool = False,
    stop: Callable[[], bool] = lambda: False,
    console: Console | None = None,
    on_summary: Callable[[SessionSummary], None] | None = None,
) -> None:
    """Print results until ``stop()`` is true, one line per face per wall-clock second."""
    console = console or Console()
    consumer = KafkaConsumer(
        settings.results_topic, settings.summaries_topic,
        bootstrap_servers=settings.bootstrap.split(","),
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False, group_id=None, consumer_timeout_ms=200,
    )
    seconds: dict[str, _Second] = defaultdict(_Second)
    tick = time.monotonic()
    pacer = Pacer(max_pause_s=settings.fetch_idle_max_s)
    try:
        while not stop():
            for records in paced_poll(consumer, pacer, 500, 200).values():
                for m in records:
                    try:
                        kind, _ = peek_header(m.value)
                        rec = decode(m.value)
                    except PayloadError as exc:
                        console.print(f"[red]unreadable record at {m.topic}:{m.partition}@{m.offset}: {exc}")
                        continue
                    if session_id and rec["session_id"] != session_id:
                        continue
                    if kind is FACE_RESULT:
                        r = FaceResult(**rec)
                        seconds[r.face_key].add(r)
                    elif kind is SESSION_SUMMARY:
                        s = SessionSummary(**rec)
                        console.print(format_summary(s), soft_wrap=True)
                        if on_summary:
                            on_summary(s)
            if time.monotonic() - tick >= 1.0:
                tick = time.monotonic()
                for key, sec in sorted(seconds.items()):
                    console.print(format_second(key, sec), highlight=False, soft_wrap=True)
                seconds.clear()
    finally:
        consumer.close()
