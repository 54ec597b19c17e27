"""The processes of a chaos run and what is done to them: the worker, the store sink and two
gateways as processes of their own (``facestream.services``), killed with SIGKILL and started
again; the embedded PostgreSQL (started by the run, never a server it did not start) frozen with
SIGSTOP, every one of its processes, and continued."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from facestream.services import spawn, stop
from infra.settings import Settings


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (0 when it is gone)."""
    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return 0


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants, parents before children ([] when it is gone)."""
    try:
        proc = psutil.Process(root)
        return [root, *(c.pid for c in proc.children(recursive=True))]
    except psutil.Error:
        return []


@dataclass
class Service:
    """One process of the stack, started again after each kill."""

    name: str  # worker-0 | worker-1 | sink | gateway-0 | gateway-1
    command: str
    log: Path
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    starts: int = 0


@dataclass
class Parts:
    s: Settings
    database_url: str
    postmaster: int | None  # None: the database is not this run's, so it is never frozen
    logs: Path
    gateway_ports: tuple[int, ...]
    workers: int = 1
    services: dict[str, Service] = field(default_factory=dict)
    frozen: list[int] = field(default_factory=list)  # PostgreSQL's processes while SIGSTOPped

    def __post_init__(self) -> None:
        env = {"DATABASE_URL": self.database_url}
        for i in range(self.workers):
            self.services[f"worker-{i}"] = Service(f"worker-{i}", "worker", self.logs / f"worker-{i}.log",
                                                   {**env, "FACESTREAM_WORKER_METRICS_PORT": "0",
                                                    "FACESTREAM_WORKER_INSTANCE_ID": f"chaos-worker-{i}"})
        self.services["sink"] = Service("sink", "sink", self.logs / "sink.log",
                                        {**env, "FACESTREAM_SINK_METRICS_PORT": "0", "FACESTREAM_LOG_LEVEL": "info"})
        for i, port in enumerate(self.gateway_ports):
            self.services[f"gateway-{i}"] = Service(f"gateway-{i}", "gateway", self.logs / f"gateway-{i}.log",
                                                    {**env, "FACESTREAM_GATEWAY_PORT": str(port),
                                                     "FACESTREAM_GATEWAY_METRICS_PORT": "0",
                                                     "FACESTREAM_LOG_LEVEL": "info"})  # why clients left

    @property
    def gateway_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.gateway_ports]

    def start(self, name: str) -> None:
        svc = self.services[name]
        svc.log.parent.mkdir(parents=True, exist_ok=True)
        with svc.log.open("ab") as f:
            f.write(f"--- start {svc.starts + 1} at {time.strftime('%H:%M:%S')} ---\n".encode())
        svc.proc = spawn(svc.command, self.s, log=svc.log, env=svc.env)
        svc.starts += 1

    def start_all(self, timeout_s: float = 180.0) -> None:
        for name in self.services:
            self.start(name)
        deadline = time.monotonic() + timeout_s
        for name in self.services:
            while not self.ready(name):
                svc = self.services[name]
                if svc.proc is not None and svc.proc.poll() is not None:
                    raise RuntimeError(f"the {name} exited at start; its log: {svc.log}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the {name} was not ready in {timeout_s:.0f} s; its log: {svc.log}")
                time.sleep(0.2)

    def ready(self, name: str) -> bool:
        svc = self.services[name]
        if name.startswith("gateway"):
            try:
                return httpx.get(f"http://127.0.0.1:{svc.env['FACESTREAM_GATEWAY_PORT']}/healthz",
                                 timeout=1).status_code == 200
            except httpx.HTTPError:
                return False
        text = svc.log.read_text(errors="replace").rsplit("--- start", 1)[-1]
        return ("Ready" if name.startswith("worker") else "store sink:") in text

    def kill(self, name: str) -> None:
        svc = self.services[name]
        if svc.proc is not None:
            svc.proc.kill()
            svc.proc.wait(30)

    def pid(self, name: str) -> int | None:
        proc = self.services[name].proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def freeze_database(self) -> list[int]:
        """SIGSTOP every process of the run's PostgreSQL (children first); returns them."""
        assert self.postmaster is not None, "the database is not this run's: it is never frozen"
        pids = process_tree(self.postmaster)
        self.frozen = pids
        for pid in reversed(pids):
            os.kill(pid, signal.SIGSTOP)
        return pids

    def thaw_database(self, pids: list[int] | None = None) -> None:
        """SIGCONT what ``freeze_database`` stopped (also on the way out of an interrupted run)."""
        for pid in pids if pids is not None else self.frozen:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.frozen = []

    def stop_all(self) -> None:
        self.thaw_database()
        for svc in reversed(list(self.services.values())):
            if svc.proc is not None:
                stop(svc.proc, timeout_s=30)
