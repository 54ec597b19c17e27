"""Helpers for the fault tests: paced publishing, row counts (the sink thread is in tests/conftest.py)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import psycopg

from infra.settings import Settings
from producers.publish import Publisher
from schemas import LandmarkFrame


def relabel(frames: list[LandmarkFrame], session_id: str) -> list[LandmarkFrame]:
    """The same real landmark stream as a new session, captured now."""
    now = int(time.time() * 1000)
    t0 = frames[0].capture_ms
    return [LandmarkFrame(**{**f.__dict__, "session_id": session_id, "capture_ms": now + f.capture_ms - t0})
            for f in frames]


def publish(s: Settings, frames: list[LandmarkFrame], fps: float, sent: list[int] | None = None) -> None:
    """Publish at ``fps`` with the edge producer's settings (acks=all, retries); raises if any
    frame was not acknowledged."""
    pub = Publisher(s)
    try:
        for i, f in enumerate(frames):
            pub.send(f)
            if sent is not None:
                sent.append(i)
            time.sleep(1.0 / fps)
        pub.flush()
    finally:
        pub.close()


def rows(url: str) -> Counter:
    """(face_key, seq) -> number of rows in face_results."""
    with psycopg.connect(url) as conn:
        return Counter((k, q) for k, q in conn.execute("SELECT face_key, seq FROM face_results"))


def session_frames(url: str, face_key: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return [n for (n,) in conn.execute("SELECT session_frame FROM face_results WHERE face_key = %s "
                                           "ORDER BY seq", (face_key,))]


def wait_for(cond: Callable[[], bool], timeout_s: float, every_s: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(every_s)
    return cond()
