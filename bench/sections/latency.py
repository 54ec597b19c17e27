"""Capture -> calculation over Socket.IO with many simulated Mojo clients."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timezone

import numpy as np

from bench.harness import ROOT, Figure, free_port, topic_settings
from facestream.services import spawn, stop
from infra.settings import Settings
from infra.topics import ensure_topics
from schemas import LandmarkFrame


def bench_latency(base: Settings, frames: list[LandmarkFrame], db_url: str, faces: tuple[int, ...] = (10, 50, 100),
                  seconds: float = 10.0) -> list[Figure]:
    import httpx
    import socketio as sio_mod

    from sinks.gateway import auth, fastjson
    from sinks.store.db import connect, migrate

    out = []
    s = topic_settings(base, uuid.uuid4().hex[:6])
    ensure_topics(s)
    with connect(db_url) as conn:
        migrate(conn)
        key, rec = auth.create_key(conn, "bench")
    port = free_port()
    env = {"DATABASE_URL": db_url, "FACESTREAM_GATEWAY_PORT": str(port)}
    worker = spawn("worker", s, "--loglevel", "warning", env=env, cwd=ROOT)
    gateway = spawn("gateway", s, env=env, cwd=ROOT)
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
            stop(p, timeout_s=30)
    return out
