"""`facestream bench`: the performance figures, measured side by side in one run.

Writes ``bench/results/<name>.json`` per section and ``bench/results/README.md`` (a table of
every figure with its target). Each figure names the machine, the broker and the commit. Not part
of the tests: shared machines are noisy, so ratios measured in the same run matter more than
absolute numbers.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import json
import os
import platform
import pstats
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from facestream.bench_faces import SECTIONS as FACE_SECTIONS
from facestream.bench_faces import bench_detector, bench_images
from infra import assets
from infra.embedded import start_broker, stop_broker
from infra.settings import Settings, settings_env
from infra.topics import ensure_topics
from schemas import LandmarkFrame

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results"


def _machine() -> dict:
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    commit = subprocess.run(["git", "describe", "--always"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip() or "unknown"
    # Uncommitted code changes make a figure unattributable; the results files themselves do not.
    changed = subprocess.run(["git", "status", "--porcelain", "--", ".", ":!bench/results"], capture_output=True,
                             text=True, cwd=ROOT).stdout.strip()
    commit += "-dirty" if changed else ""
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "commit": commit,
            "broker": "noida-db 0.2.3 (embedded)", "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


@dataclass
class Figure:
    section: str
    name: str
    value: float
    unit: str
    target: str = ""
    met: bool | None = None
    note: str = ""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- 1. edge --------------------------------------------------------------------------------------
def _canvas_640x480(rgb: np.ndarray, faces: int) -> np.ndarray:
    """One face: the 640x360 video frame letterboxed to 640x480. Three faces: three half-size
    copies of the frame in a 2x2 grid."""
    out = np.zeros((480, 640, 3), np.uint8)
    if faces == 1:
        out[60:420] = rgb
        return out
    small = cv2.resize(rgb, (320, 180))
    for i, (y, x) in enumerate(((30, 0), (30, 320), (270, 160))[:faces]):
        out[y:y + 180, x:x + 320] = small
    return out


def bench_edge(frames: int = 150) -> list[Figure]:
    from producers.sources import VideoSource
    from vision.landmarker import Landmarker

    src = [f.rgb for f, _ in zip(VideoSource(assets.media("WolfgangLanger_Pexels.mp4")), range(frames))]
    out = []
    for n in (1, 3):
        canvases = [_canvas_640x480(rgb, n) for rgb in src]
        found = []
        with Landmarker(max_faces=4) as lm:
            lm.detect(canvases[0], 0)
            t = time.perf_counter()
            for i, c in enumerate(canvases[1:], 1):
                found.append(len(lm.detect(c, int(i * 33.3))))
            dt = (time.perf_counter() - t) / (len(canvases) - 1)
        out.append(Figure("edge", f"landmarks, 640x480, {n} face(s)", 1000 * dt, "ms/frame",
                          note=f"{1 / dt:.0f} fps; faces found per frame: {np.mean(found):.2f}"))
    return out


# -- 2. processor throughput ------------------------------------------------------------------------
def _real_frames() -> list[LandmarkFrame]:
    from producers.publish import ProduceStats, extract
    from producers.sources import VideoSource
    from vision.landmarker import Landmarker

    out: list[LandmarkFrame] = []
    with Landmarker(max_faces=2) as lm:
        for fs in extract(VideoSource(assets.media("WolfgangLanger_Pexels.mp4")), lm, "bench", "bench",
                          int(time.time() * 1000), ProduceStats()):
            out.extend(fs)
    return out


def _prefill(s: Settings, frames: list[LandmarkFrame], copies: int, device_blendshapes: bool) -> int:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=s.bootstrap, linger_ms=20, batch_size=1 << 20, acks=1)
    now = int(time.time() * 1000)
    n = 0
    for c in range(copies):
        for f in frames:
            g = LandmarkFrame(**{**f.__dict__, "session_id": f"bench-{c}", "capture_ms": now + f.seq * 33,
                                 "blendshapes": f.blendshapes if device_blendshapes else None})
            p.send(s.frames_topic, key=g.key.encode(), value=g.encode())
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


def _spy(pid: int, out: Path) -> subprocess.Popen | None:
    """py-spy sampling a process until it exits (folded stacks), or None where py-spy is missing."""
    exe = Path(sys.executable).parent / "py-spy"
    if not exe.exists():
        return None
    # --nonblocking: sample without pausing the worker, which would slow what is being measured.
    return subprocess.Popen([str(exe), "record", "--nonblocking", "--pid", str(pid), "--rate", "200", "--format", "raw",
                             "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize_spy(folded: Path, top: int = 14) -> str:
    """Where a process spent its samples: functions by own time, and facestream's by inclusive time."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in folded.read_text().splitlines():
        if not line.strip():
            continue
        stack, count = line.rsplit(" ", 1)
        frames, n = stack.split(";"), int(count)
        total += n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            inclusive[f] = inclusive.get(f, 0) + n
    ours = {f: v for f, v in inclusive.items() if any(p in f for p in ("processors/", "schemas/", "infra/pacing"))}
    lines = [f"{total} samples", "", "own time:"]
    lines += [f"  {100 * v / total:5.1f}%  {f}" for f, v in sorted(own.items(), key=lambda x: -x[1])[:top]]
    lines += ["", "facestream code, inclusive:"]
    lines += [f"  {100 * v / total:5.1f}%  {f}" for f, v in sorted(ours.items(), key=lambda x: -x[1])[:top]]
    return "\n".join(lines)


def _worker_rate(s: Settings, n: int, workers: int = 1, profile: Path | None = None) -> tuple[float, float]:
    """(frames/s from first to last result, start-up seconds) for ``workers`` worker processes;
    with ``profile``, the first worker's py-spy summary is written there."""
    from kafka import KafkaConsumer

    env = {**os.environ, **settings_env(s)}
    procs = []
    t0 = time.monotonic()
    for i in range(workers):
        e = {**env, "FACESTREAM_WORKER_INSTANCE_ID": f"bench-{i}"}
        procs.append(subprocess.Popen([sys.executable, "-m", "facestream.cli", "worker", "--loglevel", "warning"],
                                      env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT))
    folded = OUT / "worker.folded"
    spy = _spy(procs[0].pid, folded) if profile else None
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
            p.wait(30)
    end = time.monotonic()
    if spy is not None and profile is not None:
        try:
            spy.wait(60)
            profile.write_text(summarize_spy(folded) + "\n")
        except (subprocess.TimeoutExpired, OSError, ValueError) as exc:
            profile.write_text(f"py-spy gave no profile: {exc}\n")
        folded.unlink(missing_ok=True)
    return got / (end - (first or end)), (first or end) - t0


def _topic_settings(base: Settings, tag: str, partitions: int = 4) -> Settings:
    return base.model_copy(update=dict(
        frames_topic=f"bench-{tag}.frames", results_topic=f"bench-{tag}.results",
        summaries_topic=f"bench-{tag}.sessions", dead_letter_topic=f"bench-{tag}.dead", app_id=f"bench-{tag}",
        worker_metrics_port=0, partitions=partitions, session_gap_s=60.0,
        data_dir=base.data_dir / f"worker-{tag}"))


def bench_processor(base: Settings, frames: list[LandmarkFrame], copies: int = 32, repeats: int = 3) -> list[Figure]:
    """Worker and raw consumer alternately on the same pre-filled topic, ``repeats`` times each
    (this shared machine varies by +-30 % between runs): medians, with every run in the note."""
    out = []
    for device in (True, False):
        s = _topic_settings(base, uuid.uuid4().hex[:6])
        ensure_topics(s)
        n = _prefill(s, frames, copies, device)
        tag = "device-blendshapes" if device else "landmarks-only"
        raws, rates, startups = [], [], []
        for rep in range(repeats):
            # A consumer group and results topic of its own per run, on the same frames.
            r = s.model_copy(update={"app_id": f"{s.app_id}-{rep}", "results_topic": f"{s.results_topic}-{rep}",
                                     "summaries_topic": f"{s.summaries_topic}-{rep}"})
            ensure_topics(r)
            raws.append(_raw_consume_rate(r, n))
            last = rep == repeats - 1
            rate, startup = _worker_rate(r, n, profile=OUT / f"worker-profile-{tag}.txt" if last else None)
            rates.append(rate)
            startups.append(startup)
        rate, raw = float(np.median(rates)), float(np.median(raws))
        runs = ", ".join(f"{w:,.0f}/{c:,.0f}" for w, c in zip(rates, raws))
        kind = "with device blendshapes" if device else "landmarks only (server-side blendshapes)"
        out.append(Figure("processor", f"one worker, {kind}", rate, "frames/s", ">= 5000",
                          rate >= 5000, f"median of {repeats}; {n} frames, start-up {np.median(startups):.1f} s"))
        out.append(Figure("processor", f"raw aiokafka consume + decode, {kind}", raw, "frames/s",
                          note=f"median of {repeats}"))
        out.append(Figure("processor", f"worker / raw ratio, {kind}", rate / raw, "", ">= 0.5", rate / raw >= 0.5,
                          f"worker/raw per run, side by side: {runs}"))
    return out


def bench_scaling(base: Settings, frames: list[LandmarkFrame]) -> list[Figure]:
    out = []
    for workers in (1, 2, 4):
        s = _topic_settings(base, uuid.uuid4().hex[:6], partitions=4)
        ensure_topics(s)
        n = _prefill(s, frames, 32, True)
        rate, _ = _worker_rate(s, n, workers)
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


# -- 3. end to end latency ---------------------------------------------------------------------------
def bench_latency(base: Settings, frames: list[LandmarkFrame], db_url: str, faces: tuple[int, ...] = (10, 50, 100),
                  seconds: float = 10.0) -> list[Figure]:
    import httpx
    import socketio as sio_mod

    from sinks.gateway import auth, fastjson
    from sinks.store.db import connect, migrate

    out = []
    s = _topic_settings(base, uuid.uuid4().hex[:6])
    ensure_topics(s)
    with connect(db_url) as conn:
        migrate(conn)
        key, rec = auth.create_key(conn, "bench")
    port = _free_port()
    env = {**os.environ, **settings_env(s), "DATABASE_URL": db_url, "FACESTREAM_GATEWAY_PORT": str(port)}
    worker = subprocess.Popen([sys.executable, "-m", "facestream.cli", "worker", "--loglevel", "warning"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    gateway = subprocess.Popen([sys.executable, "-m", "facestream.cli", "gateway"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        token = httpx.put(f"{url}/mojo_perception_api/user", headers={"Authorization": key},
                          json={"expiration": 3600}).json()["auth_token"]
        meshes = [[[float(x * f.width), float(y * f.height), float(z * f.width)] for x, y, z in f.landmarks]
                  for f in frames[:300]]
        time.sleep(5)  # let the worker join its group

        async def client(i: int, lat: list[float]) -> None:
            # orjson on the client too: this harness would otherwise spend more CPU encoding the
            # meshes than the gateway spends on them (real Mojo clients are browsers).
            c = sio_mod.AsyncClient(reconnection=False, json=fastjson)
            sent: list[float] = []
            got = 0

            def on_calc(_: dict) -> None:
                nonlocal got
                if got < len(sent):
                    lat.append(time.perf_counter() - sent[got])
                got += 1

            c.on("calculation", on_calc, namespace=f"/{rec.namespace}")
            await c.connect(url, namespaces=[f"/{rec.namespace}"], auth={"token": token}, transports=["websocket"])
            await asyncio.sleep(i * 0.033 / max(1, len(meshes)))
            t0 = time.perf_counter()
            k = 0
            while time.perf_counter() - t0 < seconds:
                sent.append(time.perf_counter())
                await c.emit("facemesh", {"facemesh": meshes[k % len(meshes)], "output": ["attention", "engagement"],
                                          "timestamp": datetime.now(timezone.utc).isoformat()},
                             namespace=f"/{rec.namespace}")
                k += 1
                await asyncio.sleep(max(0.0, t0 + k / 30.0 - time.perf_counter()))
            await asyncio.sleep(5)
            await c.disconnect()

        for n in faces:
            lat: list[float] = []

            async def run(n: int = n, lat: list[float] = lat) -> None:
                await asyncio.gather(*(client(i, lat) for i in range(n)))

            asyncio.run(run())
            expected = int(n * seconds * 30)
            p50, p95, p99 = (1000 * np.percentile(lat, q) for q in (50, 95, 99)) if lat else (float("nan"),) * 3
            note = f"{len(lat)} of ~{expected} calculations received in time; p50 {p50:.0f} ms, p95 {p95:.0f} ms"
            out.append(Figure("latency", f"capture -> calculation p99, {n} faces x 30 Hz", p99, "ms",
                              "<= 100 (50 faces)" if n == 50 else "", (p99 <= 100) if n == 50 else None, note))
    finally:
        for p in (gateway, worker):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
    return out


# -- 4. store ------------------------------------------------------------------------------------
def bench_store(db_url: str, frames: list[LandmarkFrame], rows_target: int = 1_000_000) -> list[Figure]:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from processors.pipeline import FrameProcessor

    results = FrameProcessor().process(frames, {}).results
    out = []
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        return _store(make_conninfo(**{**conninfo_to_dict(db_url), "dbname": name}), results, rows_target, out)
    finally:
        with psycopg.connect(db_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _store(url: str, results: list, rows_target: int, out: list[Figure]) -> list[Figure]:
    from sinks.store import queries
    from sinks.store.db import connect, migrate
    from sinks.store.writer import StoreWriter

    with connect(url) as conn:
        migrate(conn)
        w = StoreWriter(conn)
        batches = []
        for c in range(40):  # 40 sessions x ~470 results = ~19k rows, 2000 per COPY batch
            sid = f"store-{c}-{uuid.uuid4().hex[:4]}"
            rs = [type(r)(**{**r.__dict__, "session_id": sid, "face_key": f"{sid}/0"}) for r in results]
            batches += [rs[i:i + 2000] for i in range(0, len(rs), 2000)]
        n = sum(len(b) for b in batches)
        t = time.perf_counter()
        for b in batches:
            w.write(b, [])
        dt = time.perf_counter() - t
        out.append(Figure("store", "sink COPY write rate", n / dt, "rows/s", ">= 20000", n / dt >= 20000,
                          f"{n} rows in batches of 2000"))
        # Grow to rows_target by duplicating sessions inside PostgreSQL, then time the queries.
        have = conn.execute("SELECT count(*) FROM face_results").fetchone()[0]
        k = 0
        while have < rows_target:
            with conn.transaction():
                conn.execute("""INSERT INTO face_results SELECT face_key || %(s)s, seq, capture_time, session_id || %(s)s,
                                 device_id, track_id, processed_time, session_started, session_frame, amusement, surprise,
                                 confusion, attention, engagement, engagement_phase, interaction_status, emotion, p_neutral,
                                 p_happy, p_sad, p_surprise, p_angry, p_fear, p_disgust, yaw, pitch, roll, gaze_x, gaze_y,
                                 eye_openness, blink, blinks, blendshapes, teacher FROM face_results
                                 WHERE session_id NOT LIKE '%%#%%' LIMIT %(lim)s""",
                             {"s": f"#{k}", "lim": rows_target - have})
            have = conn.execute("SELECT count(*) FROM face_results").fetchone()[0]
            k += 1
        conn.execute("ANALYZE face_results")
        sid = f"{batches[0][0].session_id}"
        timed: dict[str, Callable[[], object]] = {
            "per-session summary": lambda: queries.session_summary(conn, sid),
            "per-minute timeline": lambda: queries.timeline(conn, sid),
            "engagement distribution (all rows)": lambda: queries.distribution(conn, "engagement"),
            "sessions by device, last day": lambda: queries.sessions(conn, device="bench"),
        }
        for name, fn in timed.items():
            fn()
            ts = []
            for _ in range(5):
                t = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t)
            target = "<= 50" if name in ("per-session summary", "per-minute timeline") else ""
            ms = 1000 * float(np.median(ts))
            out.append(Figure("store", f"query: {name} on {have:,} rows", ms, "ms", target,
                              (ms <= 50) if target else None))
    return out


# -- 5. memory ------------------------------------------------------------------------------------
def bench_memory(base: Settings, frames: list[LandmarkFrame]) -> list[Figure]:
    from kafka import KafkaProducer

    from processors.pipeline import FrameProcessor
    from processors.state import dump_session

    fp = FrameProcessor()
    out_ = fp.process(frames[:60], {})
    state = next(iter(out_.sessions.values()))
    size = len(dump_session(state))
    out = [Figure("memory", "state per face session (changelog value)", size / 1024, "KB", "<= 50", size / 1024 <= 50)]
    s = _topic_settings(base, uuid.uuid4().hex[:6])
    ensure_topics(s)
    env = {**os.environ, **settings_env(s)}
    w = subprocess.Popen([sys.executable, "-m", "facestream.cli", "worker", "--loglevel", "warning"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
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
        w.send_signal(signal.SIGTERM)
        w.wait(30)
    return out


SECTIONS = ("edge", "processor", "latency", "store", "memory", "scaling") + FACE_SECTIONS


def _shortfall(f: dict) -> str:
    """How far a missed figure is from its target, e.g. " (0.62x the target)"."""
    m = re.match(r"\s*[<>]=\s*([\d,.]+)", f["target"])
    if not m or not f["value"]:
        return ""
    return f" ({f['value'] / float(m.group(1).replace(',', '')):.2f}x the target)"


def write(figures: list[Figure], machine: dict, profile: str | None) -> Path:
    """Write this run's sections as JSON, then the README table from every section's latest JSON
    (so running one section keeps the others' figures, each with its own machine and commit)."""
    OUT.mkdir(parents=True, exist_ok=True)
    by_section: dict[str, list[dict]] = {}
    for f in figures:
        f.value, f.met = float(f.value), None if f.met is None else bool(f.met)
        by_section.setdefault(f.section, []).append(f.__dict__)
    for section, rows in by_section.items():
        (OUT / f"{section}.json").write_text(json.dumps({"machine": machine, "figures": rows}, indent=2) + "\n")
    if profile:
        (OUT / "profile.txt").write_text(profile)
    lines = ["# Benchmark", "", "| section | figure | value | target | met | note | run |",
             "|---|---|---|---|---|---|---|"]
    runs: dict[str, dict] = {}
    for section in SECTIONS:
        path = OUT / f"{section}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        m = data["machine"]
        runs[f"{m['date']} {m['commit']}"] = m
        for f in data["figures"]:
            met = "" if f["met"] is None else ("yes" if f["met"] else f"**no**{_shortfall(f)}")
            lines.append(f"| {section} | {f['name']} | {f['value']:,.2f} {f['unit']} | {f['target']} | {met} | "
                         f"{f['note']} | {m['date']} `{m['commit']}` |")
    lines += ["", "Runs: " + "; ".join(f"{k}: {m['cpu']}, {m['cores']} cores, broker {m['broker']}"
                                       for k, m in runs.items())]
    for spy in sorted(OUT.glob("worker-profile-*.txt")):
        lines += ["", f"## py-spy: one worker process through the processor run ({spy.stem.split('-', 2)[2]})", "",
                  "```", spy.read_text().strip(), "```"]
    if (OUT / "profile.txt").exists():
        lines += ["", "## Profile: a landmark-only batch of 256 frames through FrameProcessor.process (x5)", "",
                  "```", (OUT / "profile.txt").read_text().strip(), "```", ""]
    md = OUT / "README.md"
    md.write_text("\n".join(lines) + "\n")
    return md


def run(sections: tuple[str, ...], log: Callable[[str], None] = print) -> Path:
    from sinks.store.db import database_url, stop_embedded

    machine = _machine()
    root = ROOT / ".facestream" / "bench"
    figures: list[Figure] = []
    db_settings = Settings(data_dir=root, kafka_bootstrap_servers=None)
    try:
        log("extracting the real landmark stream (WolfgangLanger_Pexels.mp4)")
        frames = _real_frames()
        profile = profile_pipeline(frames)
        db = database_url(db_settings)
        steps: dict[str, Callable[[Settings], list[Figure]]] = {
            "edge": lambda base: bench_edge(),
            "processor": lambda base: bench_processor(base, frames),
            "latency": lambda base: bench_latency(base, frames, db),
            "store": lambda base: bench_store(db, frames),
            "memory": lambda base: bench_memory(base, frames),
            "scaling": lambda base: bench_scaling(base, frames),
            "detector": lambda base: bench_detector(Figure),
            "images": lambda base: bench_images(Figure),
        }
        for name in sections:
            log(f"{name} ...")
            with _fresh_broker(root) as base:
                got = steps[name](base)
            for f in got:
                log(f"  {f.name}: {f.value:,.2f} {f.unit} {f.note}")
            figures += got
            write(figures, machine, profile)
    finally:
        stop_embedded(db_settings)
    return write(figures, machine, profile)


@contextmanager
def _fresh_broker(root: Path) -> Iterator[Settings]:
    """An embedded broker on an empty data directory, for one section. noida-db holding earlier
    sections' topics was measured using most of a core while idle, which the next section would
    pay for."""
    base = Settings(embedded_kafka_port=_free_port(), data_dir=root, kafka_bootstrap_servers=None)
    shutil.rmtree(root / "broker", ignore_errors=True)
    st = start_broker(base)
    try:
        yield base.model_copy(update={"kafka_bootstrap_servers": st.address})
    finally:
        stop_broker(base)
        shutil.rmtree(root / "broker", ignore_errors=True)

if __name__ == "__main__":
    run(tuple(sys.argv[1:]) or ("edge", "processor", "latency", "store", "memory", "scaling"))
