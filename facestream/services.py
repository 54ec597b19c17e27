"""Starting and stopping the stack's own processes: each is ``python -m facestream.cli <service>``
with the settings passed through its environment. The demo, the benchmark and the tests start
workers and gateways this one way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from infra.settings import Settings, settings_env


def spawn(service: str, settings: Settings, *args: str, log: Path | None = None,
          env: Mapping[str, str] | None = None, cwd: Path | None = None, detach: bool = False) -> subprocess.Popen:
    """Start ``facestream <service> <args>`` with ``settings`` (plus ``env``); its output is
    appended to ``log``, or dropped. ``detach``: in a session of its own, so it outlives the
    terminal that started it and a Ctrl-C there."""
    full_env = {**os.environ, **settings_env(settings), "PYTHONUNBUFFERED": "1", **(env or {})}
    command = [sys.executable, "-m", "facestream.cli", service, *args]
    if log is None:
        return subprocess.Popen(command, env=full_env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, start_new_session=detach)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(command, env=full_env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=detach)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> int:
    """Send ``sig`` (a clean stop by default) and wait; kill it if it has not exited in time."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode
