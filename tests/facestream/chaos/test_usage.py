"""The chaos run's CPU meter, on real processes: a part's CPU covers all its lives."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from facestream.chaos.usage import CpuMeter, cpu_seconds, listener_pid, machine_busy_seconds

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\ntime.sleep(60)"


def _burner(seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", BURN.format(s=seconds)])


def _until_burned(proc: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + 30
    while (cpu_seconds(proc.pid) or 0.0) < seconds and time.monotonic() < deadline:
        time.sleep(0.05)


def test_cpu_seconds_of_a_process_and_of_one_gone():
    proc = _burner(0.5)
    try:
        _until_burned(proc, 0.5)
        assert 0.4 <= cpu_seconds(proc.pid) < 5.0
    finally:
        proc.kill()
        proc.wait()
    assert cpu_seconds(proc.pid) is None


def test_a_part_killed_and_started_again_counts_both_lives():
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    first = _burner(0.6)
    live = {"worker": [first.pid], "idle": [idle.pid]}
    meter = CpuMeter(lambda: live, every_s=0.05)
    second = None
    try:
        meter.start()
        _until_burned(first, 0.6)
        time.sleep(0.2)  # a sample after the burn
        first.kill()
        first.wait()
        second = _burner(0.6)
        live["worker"] = [second.pid]
        _until_burned(second, 0.6)
        time.sleep(0.2)
        meter.stop()
        used = meter.seconds()
        # Both lives, less what the first had used before the meter started (its interpreter's start).
        assert 0.9 <= used["worker"] <= 1.6, used
        assert used["idle"] < 0.2, used
        busy, available = meter.machine()
        assert 0 < busy <= available
    finally:
        for p in (idle, first, second):
            if p is not None:
                p.kill()
                p.wait()


def test_machine_busy_is_at_most_its_total():
    busy, total = machine_busy_seconds()
    assert 0 < busy <= total


def test_the_process_listening_on_a_port():
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        port = srv.getsockname()[1]
        assert listener_pid("127.0.0.1", port) is None  # bound, not listening
        srv.listen()
        assert listener_pid("127.0.0.1", port) == os.getpid()
