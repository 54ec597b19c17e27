"""The PostgreSQL sink's COPY rate and the analysts' queries on a million rows."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import numpy as np

from bench.harness import Figure
from schemas import LandmarkFrame


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
