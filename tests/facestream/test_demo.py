"""`facestream demo` end to end, as a new user runs it, without a terminal: the whole stack comes
up, a real video is replayed, the live lines, the stored session and the dashboard answer, and
everything it started is stopped, leaving no process, port or pid file behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import httpx
import pytest

from infra import assets
from tests.conftest import _free_port

pytestmark = pytest.mark.integration


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_demo_runs_the_whole_product_and_cleans_up(tmp_path):
    gateway_port, broker_port = _free_port(), _free_port()
    env = {**os.environ, "FACESTREAM_DATA_DIR": str(tmp_path / "state"), "FACESTREAM_GATEWAY_PORT": str(gateway_port),
           "FACESTREAM_EMBEDDED_KAFKA_PORT": str(broker_port), "FACESTREAM_WORKER_METRICS_PORT": "0",
           "FACESTREAM_SINK_METRICS_PORT": "0", "COLUMNS": "120"}
    for var in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "FACESTREAM_WORKER_INSTANCE_ID"):
        env.pop(var, None)
    video = assets.media("single_face.mp4")  # 72 frames: the replay shortened, the stack whole
    proc = subprocess.Popen([sys.executable, "-m", "facestream.cli", "demo", "--fast", "--video", str(video)],
                            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    live: list[dict] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("replaying ") and not live:
            # The dashboard's live API while the replay runs.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not live:
                key = re.search(r"fsk_\w+_\S+", "".join(lines)).group(0)  # the key the demo printed
                try:
                    live = httpx.get(f"http://127.0.0.1:{gateway_port}/api/live", timeout=2,
                                     headers={"Authorization": key}).json()
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
    assert proc.wait(120) == 0, "".join(lines)
    out = "".join(lines)
    assert f"http://127.0.0.1:{gateway_port}/dashboard" in out and re.search(r"fsk_\w+_\S+", out)
    assert re.search(r"session demo-\d+/0 closed: 72 frames", out)
    assert re.search(r"frames\s+│\s+72\s+│", out), "the stored session, as the analysts' query shows it"
    assert "stopped: gateway, sink, worker, database, broker" in out
    assert live and all(f["face_key"].startswith("demo-") for f in live)
    # Quiet: no native library lines, and nothing left behind.
    assert not re.search(r"^(W0000|I0000|INFO: )", out, re.M), out
    assert _port_free(gateway_port) and _port_free(broker_port)
    assert not list((tmp_path / "state" / "run").glob("*.pid"))
    assert not (tmp_path / "state" / "postgres" / "postmaster.pid").exists()
