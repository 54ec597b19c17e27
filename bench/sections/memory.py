"""State per face session and worker memory with many sessions."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from bench.harness import ROOT, Figure, topic_settings
from facestream.services import spawn, stop
from infra.settings import Settings
from infra.topics import ensure_topics
from schemas import LandmarkFrame


def bench_memory(base: Settings, frames: list[LandmarkFrame]) -> list[Figure]:
    from kafka import KafkaProducer

    from processors.codec import dump_session
    from processors.pipeline import FrameProcessor

    fp = FrameProcessor()
    out_ = fp.process(frames[:60], {})
    state = next(iter(out_.sessions.values()))
    size = len(dump_session(state))
    out = [Figure("memory", "state per face session (changelog value)", size / 1024, "KB", "<= 50", size / 1024 <= 50)]
    s = topic_settings(base, uuid.uuid4().hex[:6])
    ensure_topics(s)
    w = spawn("worker", s, "--loglevel", "warning", cwd=ROOT)
    try:
        time.sleep(8)
        p = KafkaProducer(bootstrap_servers=s.bootstrap, linger_ms=20)
        sent = 0
        for target in (100, 1000):
            now = int(time.time() * 1000)
            for i in range(sent, target):
                f = frames[i % len(frames)]
                g = LandmarkFrame(**{**f.__dict__, "session_id": f"mem-{i}", "capture_ms": now})
                p.send(s.frames_topic, key=g.key.encode(), value=g.encode())
            p.flush()
            sent = target
            time.sleep(6)
            rss = int(Path(f"/proc/{w.pid}/status").read_text().split("VmRSS:")[1].split()[0])
            out.append(Figure("memory", f"worker RSS with {target} active sessions", rss / 1024, "MB"))
        p.close()
    finally:
        stop(w, timeout_s=30)
    return out
