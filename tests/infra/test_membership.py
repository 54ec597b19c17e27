"""Static member ids: claimed per host and group, given back when the holder ends (pure file locks)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from infra.membership import MembershipError, claim


def test_slots_go_to_the_lowest_free_one_and_come_back(tmp_path):
    a = claim("worker", "g", tmp_path, host="h")
    b = claim("worker", "g", tmp_path, host="h")
    assert (a.instance_id, b.instance_id) == ("h-worker-0", "h-worker-1")
    assert claim("worker", "other-group", tmp_path, host="h").instance_id == "h-worker-0"
    assert claim("sink", "g", tmp_path, host="h").instance_id == "h-sink-0"
    a.release()
    assert claim("worker", "g", tmp_path, host="h").instance_id == "h-worker-0"


def test_an_explicit_id_held_by_a_live_process_is_refused(tmp_path):
    held = claim("worker", "g", tmp_path, explicit="w1")
    with pytest.raises(MembershipError, match="held by another live process"):
        claim("worker", "g", tmp_path, explicit="w1")
    held.release()
    assert claim("worker", "g", tmp_path, explicit="w1").instance_id == "w1"


def test_a_killed_holder_gives_its_slot_back(tmp_path):
    """SIGKILL leaves no chance to clean up: the kernel drops the lock with the process."""
    code = ("import sys, time; sys.path[:0] = sys.argv[2:]; from infra.membership import claim; "
            "m = claim('worker', 'g', sys.argv[1], host='h'); print(m.instance_id, flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), *sys.path], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "h-worker-0"
    assert claim("worker", "g", tmp_path, host="h").instance_id == "h-worker-1"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    deadline = time.monotonic() + 5
    while True:
        m = claim("worker", "g", tmp_path, host="h")
        if m.instance_id == "h-worker-0" or time.monotonic() > deadline:
            break
        m.release()
    assert m.instance_id == "h-worker-0"
