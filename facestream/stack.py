"""The whole product on one machine: broker, database, worker, store sink and gateway.

The broker and database are the configured ones, or embedded ones started here; the three
services are processes of their own (``facestream.services``), each with its log under
``<data_dir>/logs`` and its pid under ``<data_dir>/run``, so ``facestream status`` and
``facestream down`` find them from another terminal. Started in that order, each waited for
until it answers; stopped in the reverse order, cleanly.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from facestream.services import spawn
from infra.embedded import pid_alive
from infra.settings import Settings

SERVICES = ("worker", "sink", "gateway")


class StackError(RuntimeError):
    """A part of the stack did not come up; the message names it and its log."""


def run_dir(s: Settings) -> Path:
    return s.data_dir / "run"


def log_path(s: Settings, part: str) -> Path:
    return s.data_dir / "logs" / f"{part}.log"


def pid_of(s: Settings, service: str) -> int | None:
    """The recorded pid of a service if that process still lives (a service that exited counts
    as gone even before its parent reaps it)."""
    try:
        pid = int((run_dir(s) / f"{service}.pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def _ended(pid: int, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for ``pid`` to end, reaping it if it is our child."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(ChildProcessError):  # not our child: nothing to reap
            os.waitpid(pid, os.WNOHANG)
        if not pid_alive(pid):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


@dataclass
class Stack:
    s: Settings
    database_url: str = ""
    started_broker: bool = False
    started_database: bool = False

    @property
    def gateway_url(self) -> str:
        return f"http://{self.s.gateway_host}:{self.s.gateway_port}"

    def start(self, *, detach: bool = False, timeout_s: float = 120.0) -> None:
        """Broker, database, then the services; returns when all of them answer."""
        from infra.embedded import broker_status, start_broker
        from infra.topics import ensure_topics
        from sinks.store.db import connect, database_url, embedded_running, migrate

        if self.s.embedded:
            self.started_broker = not broker_status(self.s).running
            start_broker(self.s)
        ensure_topics(self.s)
        self.started_database = not self.s.database_url and not embedded_running(self.s)
        self.database_url = database_url(self.s)
        with connect(self.database_url) as conn:
            migrate(conn)
        run_dir(self.s).mkdir(parents=True, exist_ok=True)
        env = {"DATABASE_URL": self.database_url}
        for service in SERVICES:
            if pid_of(self.s, service) is not None:
                raise StackError(f"a {service} of this stack already runs (pid {pid_of(self.s, service)}): "
                                 "`facestream down` stops it")
            log = log_path(self.s, service)
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_bytes(b"")  # readiness is read from this run's log lines only
            proc = spawn(service, self.s, log=log, env=env, detach=detach)
            (run_dir(self.s) / f"{service}.pid").write_text(str(proc.pid))
        self._wait(timeout_s)

    def _wait(self, timeout_s: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        ready: set[str] = set()
        while time.monotonic() < deadline and len(ready) < len(SERVICES):
            for service in SERVICES:
                if pid_of(self.s, service) is None:
                    raise StackError(f"the {service} exited at start; its log: {log_path(self.s, service)}")
            if "worker" not in ready and "Ready" in log_path(self.s, "worker").read_text(errors="replace"):
                ready.add("worker")
            if "sink" not in ready and "store sink:" in log_path(self.s, "sink").read_text(errors="replace"):
                ready.add("sink")
            if "gateway" not in ready:
                try:
                    if httpx.get(f"{self.gateway_url}/healthz", timeout=1).status_code == 200:
                        ready.add("gateway")
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        missing = [s for s in SERVICES if s not in ready]
        if missing:
            raise StackError("not ready in time: " + ", ".join(f"{m} (log: {log_path(self.s, m)})" for m in missing))

    def stop(self, timeout_s: float = 20.0) -> list[str]:
        """Stop the services (reverse order, SIGTERM, then SIGKILL after ``timeout_s``), then the
        embedded database and broker if this stack started them. Returns what it stopped."""
        stopped = stop_services(self.s, timeout_s)
        from infra.embedded import stop_broker
        from sinks.store.db import stop_embedded

        if self.started_database and stop_embedded(self.s):
            stopped.append("database")
        if self.started_broker and stop_broker(self.s):
            stopped.append("broker")
        return stopped


def stop_services(s: Settings, timeout_s: float = 20.0) -> list[str]:
    """Stop every recorded service of the stack that still runs; remove their pid files."""
    stopped = []
    for service in reversed(SERVICES):
        pid = pid_of(s, service)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            if not _ended(pid, timeout_s):
                os.kill(pid, signal.SIGKILL)
                _ended(pid, 10.0)
            stopped.append(service)
        (run_dir(s) / f"{service}.pid").unlink(missing_ok=True)
    return stopped
