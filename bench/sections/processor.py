"""Worker throughput on a pre-filled topic, beside a raw consumer; worker scaling; the pipeline's profile."""

from __future__ import annotations

import asyncio
import cProfile
import io
import os
import pstats
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np

from bench.harness import OUT, ROOT, Figure, py_spy, topic_settings, write_spy
from facestream.services import spawn, stop
from infra.settings import Settings
from infra.topics import ensure_topics
from schemas import LandmarkFrame


def prefill(s: Settings, frames: list[LandmarkFrame], copies: int, device_blendshapes: bool,
             per_record: int = 1) -> int:
    """``copies`` sessions of ``frames`` on the frames topic; returns the number of records. With
    ``per_record`` > 1 a record carries that many consecutive encoded faces (one camera frame of a
    device, all its faces), keyed by device."""
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=s.bootstrap, linger_ms=20, batch_size=1 << 20, acks=1,
                      max_request_size=16 << 20)
    now = int(time.time() * 1000)
    n = 0
    for c in range(copies):
        encoded = [(g.key.encode(), g.encode()) for g in (
            LandmarkFrame(**{**f.__dict__, "session_id": f"bench-{c}", "capture_ms": now + f.seq * 33,
                             "blendshapes": f.blendshapes if device_blendshapes else None}) for f in frames)]
        for i in range(0, len(encoded) - per_record + 1, per_record):
            chunk = encoded[i:i + per_record]
            key = chunk[0][0] if per_record == 1 else f"device-{c}".encode()
            p.send(s.frames_topic, key=key, value=b"".join(v for _, v in chunk))
            n += 1
    p.flush()
    p.close()
    return n


def _raw_consume_rate(s: Settings, n: int) -> float:
    """A plain aiokafka consumer that only decodes: frames/s over the same topic."""
    from aiokafka import AIOKafkaConsumer

    async def run() -> float:
        c = AIOKafkaConsumer(s.frames_topic, bootstrap_servers=s.bootstrap, group_id=None,
                             auto_offset_reset="earliest")
        await c.start()
        got, t0 = 0, None
        try:
            while got < n:
                batch = await c.getmany(timeout_ms=1000, max_records=5000)
                if t0 is None and batch:
                    t0 = time.perf_counter()
                for records in batch.values():
                    for m in records:
                        LandmarkFrame.decode(m.value)
                    got += len(records)
        finally:
            await c.stop()
        return got / (time.perf_counter() - (t0 or time.perf_counter()))

    return asyncio.run(run())


def worker_rate(s: Settings, n: int, workers: int = 1, profile: Path | None = None) -> tuple[float, float]:
    """(frames/s from first to last result, start-up seconds) for ``workers`` worker processes;
    with ``profile``, the first worker's py-spy summary is written there."""
    from kafka import KafkaConsumer

    t0 = time.monotonic()
    procs = [spawn("worker", s, "--loglevel", "warning", env={"FACESTREAM_WORKER_INSTANCE_ID": f"bench-{i}"}, cwd=ROOT)
             for i in range(workers)]
    folded = OUT / "worker.folded"
    spy = py_spy(procs[0].pid, folded) if profile else None
    c = KafkaConsumer(s.results_topic, bootstrap_servers=s.bootstrap, auto_offset_reset="earliest", group_id=None)
    got, first = 0, None
    try:
        while got < n and time.monotonic() - t0 < 900:
            for recs in c.poll(timeout_ms=500).values():
                first = first or time.monotonic()
                got += len(recs)
    finally:
        c.close()
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            stop(p, timeout_s=30)
    end = time.monotonic()
    if profile is not None:
        write_spy(spy, folded, profile)
    return got / (end - (first or end)), (first or end) - t0


def _engine_rate(module: str, s: Settings, n: int, *args: str) -> float:
    """frames/s of a reference consumer in ``bench.engines`` (its own process, first batch to last)."""
    import json

    from infra.settings import settings_env

    env = {**os.environ, **settings_env(s)}
    proc = subprocess.run([sys.executable, "-m", f"bench.engines.{module}", str(n), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    lines = [ln[ln.index("{"):] for ln in proc.stdout.splitlines() if '{"frames"' in ln]
    if not lines:
        raise RuntimeError(f"bench.engines.{module} gave no result (rc {proc.returncode}):\n{proc.stderr[-2000:]}")
    r = json.loads(lines[-1])
    return r["frames"] / r["seconds"]


def pipeline_us(frames: list[LandmarkFrame], device: bool, batch: int = 256, rounds: int = 20) -> float:
    """The pure pipeline's cost per frame in microseconds, in this process (batches of ``batch``)."""
    from processors.pipeline import FrameProcessor

    fp = FrameProcessor()
    b = [LandmarkFrame(**{**f.__dict__, "blendshapes": f.blendshapes if device else None}) for f in frames[:batch]]
    fp.process(b, {})
    t0 = time.perf_counter()
    for _ in range(rounds):
        fp.process(b, {})
    return (time.perf_counter() - t0) / (rounds * len(b)) * 1e6


ENGINES = ("raw aiokafka consume + decode", "bare Faust agent (consume + ack)", "Faust worker",
           "aiokafka reference loop (same pipeline work)")


def bench_processor(base: Settings, frames: list[LandmarkFrame], copies: int = 32, repeats: int = 3) -> list[Figure]:
    """Device frames through the four consumers alternately on the same pre-filled topic,
    ``repeats`` rounds (this shared machine varies by +-30 % between runs): medians, every run in
    the note, and the Faust worker's own overhead per frame beyond the bare agent and the pure
    pipeline; then the grouping."""
    out = []
    # The device path against the other engines; the landmark-only paths: bench/sections/paths.py.
    s = topic_settings(base, uuid.uuid4().hex[:6])
    ensure_topics(s)
    n = prefill(s, frames, copies, True)
    rates: dict[str, list[float]] = {e: [] for e in ENGINES}
    startups = []
    for rep in range(repeats):
        # A consumer group and results topic of its own per run, on the same frames.
        r = s.model_copy(update={"app_id": f"{s.app_id}-{rep}", "results_topic": f"{s.results_topic}-{rep}",
                                 "summaries_topic": f"{s.summaries_topic}-{rep}"})
        ensure_topics(r)
        rates[ENGINES[0]].append(_raw_consume_rate(r, n))
        rates[ENGINES[1]].append(_engine_rate("bare_faust", r, n))
        rate, startup = worker_rate(r, n)  # profiled in bench/sections/paths.py
        rates[ENGINES[2]].append(rate)
        startups.append(startup)
        ref = r.model_copy(update={"results_topic": f"{r.results_topic}-ref"})
        ensure_topics(ref)
        rates[ENGINES[3]].append(_engine_rate("reference_loop", ref, n))
    med = {e: float(np.median(v)) for e, v in rates.items()}
    kind = "with device blendshapes"
    for e in ENGINES:
        note = f"median of {repeats}: " + ", ".join(f"{v:,.0f}" for v in rates[e])
        if e == ENGINES[2]:
            note += f"; {n} frames, start-up {np.median(startups):.1f} s"
        out.append(Figure("processor", f"{e}, {kind}", med[e], "frames/s",
                          ">= 4000" if e == ENGINES[2] else "", med[e] >= 4000 if e == ENGINES[2] else None, note))
    worker, ref = rates[ENGINES[2]], rates[ENGINES[3]]
    ratios = [w / f for w, f in zip(worker, ref)]
    out.append(Figure("processor", f"Faust worker / aiokafka reference, {kind}", float(np.median(ratios)), "",
                      ">= 0.6", float(np.median(ratios)) >= 0.6,
                      "side by side per round: " + ", ".join(f"{x:.2f}" for x in ratios)))
    pipe = pipeline_us(frames, True)
    overhead = 1e6 / med[ENGINES[2]] - 1e6 / med[ENGINES[1]] - pipe
    out.append(Figure("processor", f"Faust worker's own overhead per frame, {kind}", overhead, "us",
                      note=f"1/worker - 1/bare agent - pure pipeline ({pipe:.0f} us/frame in batches of 256)"))
    out.extend(_bench_grouping(base, frames, copies, repeats))
    return out


def _bench_grouping(base: Settings, frames: list[LandmarkFrame], copies: int, repeats: int) -> list[Figure]:
    """Faust's ceiling when a record carries one camera frame's five faces instead of one face."""
    s1, s5 = (topic_settings(base, uuid.uuid4().hex[:6]) for _ in range(2))
    for s in (s1, s5):
        ensure_topics(s)
    n1 = prefill(s1, frames, copies, True)
    n5 = prefill(s5, frames, copies, True, per_record=5)
    one, five = [], []
    for rep in range(repeats):
        one.append(_engine_rate("bare_faust", s1.model_copy(update={"app_id": f"{s1.app_id}-{rep}"}), n1))
        five.append(_engine_rate("bare_faust", s5.model_copy(update={"app_id": f"{s5.app_id}-{rep}"}), n5, "5"))
    m1, m5 = float(np.median(one)), float(np.median(five))
    return [Figure("processor", "bare Faust agent, one face per record", m1, "faces/s",
                   note="median of %d: %s" % (repeats, ", ".join(f"{v:,.0f}" for v in one))),
            Figure("processor", "bare Faust agent, one camera frame (5 faces) per record", m5, "faces/s",
                   note="median of %d: %s; %.1fx one face per record" % (
                       repeats, ", ".join(f"{v:,.0f}" for v in five), m5 / m1))]


def bench_scaling(base: Settings, frames: list[LandmarkFrame]) -> list[Figure]:
    out = []
    for workers in (1, 2, 4):
        s = topic_settings(base, uuid.uuid4().hex[:6], partitions=4)
        ensure_topics(s)
        n = prefill(s, frames, 32, True)
        rate, _ = worker_rate(s, n, workers)
        out.append(Figure("scaling", f"{workers} worker process(es), 4 partitions", rate, "frames/s",
                          note="device blendshapes; 2 cores"))
    return out


def profile_pipeline(frames: list[LandmarkFrame]) -> str:
    """Where a landmark-only batch of 256 frames spends its time (cProfile, top 12)."""
    from processors.pipeline import FrameProcessor

    fp = FrameProcessor()
    batch = [LandmarkFrame(**{**f.__dict__, "blendshapes": None}) for f in frames[:256]]
    fp.process(batch, {})
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(5):
        fp.process(batch, {})
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(12)
    return buf.getvalue()
