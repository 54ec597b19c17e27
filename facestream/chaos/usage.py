"""Where a chaos run's CPU went: seconds of CPU per part (the worker, the sink, the gateways,
PostgreSQL, the broker, the harness itself) while the traffic ran, read with psutil.

A run on a small machine shares its cores between the stack and the harness that plays the
faces; this is how the report tells "the stack fell behind" from "the machine was full".
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

import psutil


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU of one process so far (None when it is gone)."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return times.user + times.system


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, summed over its cores."""
    t = psutil.cpu_times()
    total = sum(t)
    # guest time is counted inside user time already
    total -= getattr(t, "guest", 0.0) + getattr(t, "guest_nice", 0.0)
    return total - t.idle - getattr(t, "iowait", 0.0), total


def listener_pid(host: str, port: int) -> int | None:
    """The process listening on ``host:port`` of this machine (None if none, or not ours to see)."""
    try:
        for c in psutil.net_connections(kind="tcp"):
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid \
                    and c.laddr.ip in (host, "0.0.0.0", "::"):
                return c.pid
    except psutil.Error:
        return None
    return None


class CpuMeter:
    """Samples the CPU of named groups of processes every ``every_s`` from a thread of its own.

    ``parts()`` gives, at each sample, each group's live pids: a process killed and started
    again is a new pid, and the CPU its predecessor used up to its last sample is kept, so a
    part's total covers all its lives (short of at most one interval before each kill). A pid
    first seen after ``start`` counts from its own start, one seen at ``start`` from then.
    """

    def __init__(self, parts: Callable[[], dict[str, Iterable[int]]], every_s: float = 1.0) -> None:
        self._parts, self._every = parts, every_s
        self._last: dict[tuple[str, int], float] = {}  # (group, pid) -> CPU seconds at its last sample
        self._first: dict[tuple[str, int], float] = {}  # (group, pid) -> CPU seconds when first seen
        self._machine0: tuple[float, float] | None = None
        self._machine1: tuple[float, float] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chaos-cpu", daemon=True)

    def start(self) -> None:
        self._sample(started=False)
        self._machine0 = machine_busy_seconds()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._sample()
        self._machine1 = machine_busy_seconds()

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            self._sample()

    def _sample(self, started: bool = True) -> None:
        for group, pids in self._parts().items():
            for pid in pids:
                used = cpu_seconds(pid)
                if used is None:
                    continue
                # A process first seen after the start was started during the run: all its CPU counts.
                self._first.setdefault((group, pid), 0.0 if started else used)
                self._last[(group, pid)] = used

    def seconds(self) -> dict[str, float]:
        """CPU seconds per group between ``start`` and the last sample."""
        out: dict[str, float] = {}
        for key, used in self._last.items():
            out[key[0]] = out.get(key[0], 0.0) + used - self._first[key]
        return out

    def machine(self) -> tuple[float, float]:
        """(busy, available) CPU seconds of the whole machine between ``start`` and ``stop``."""
        if self._machine0 is None or self._machine1 is None:
            return 0.0, 0.0
        return self._machine1[0] - self._machine0[0], self._machine1[1] - self._machine0[1]
