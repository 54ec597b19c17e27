"""glibc's fixed mmap threshold, in fresh interpreters: memory freed after a burst of megabyte
blocks (what a catch-up's fetch responses are) goes back to the system only when it is fixed."""

from __future__ import annotations

import ctypes.util
import subprocess
import sys

import pytest

from infra.allocator import fix_mmap_threshold

# A 16 MiB block freed raises glibc's dynamic threshold past 1 MiB; then 64 blocks of 1 MiB are
# taken and all but the newest freed. Served from the heap, the newest pins what lies below it.
BURST = """
import sys
from infra.allocator import fix_mmap_threshold
def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) // 1024
if sys.argv[1] == "fixed":
    assert fix_mmap_threshold(128 * 1024)
big = bytearray(16 << 20); del big
before = rss()
blocks = [bytearray(1 << 20) for _ in range(64)]
last = blocks.pop(); del blocks
print(rss() - before)
"""

glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or ctypes.util.find_library("c") is None,
                           reason="glibc only")


def _kept_mb(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", BURST, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@glibc
def test_freed_megabyte_blocks_go_back_only_with_a_fixed_threshold():
    assert _kept_mb("dynamic") >= 48  # glibc's default: the burst stays resident
    assert _kept_mb("fixed") <= 8


def test_zero_leaves_the_allocator_alone():
    assert fix_mmap_threshold(0) is False


# Small blocks from the heap (a catch-up's records), one in ten kept: the free pages between them
# stay resident until malloc_trim hands them back.
FRAGMENTS = """
from infra.allocator import give_back
def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) // 1024
keep, drop = [], []
for i in range(30000):
    (keep if i % 10 == 0 else drop).append(bytes(2000 + (i * 7919) % 6000))
drop.clear()
before = rss()
give_back()
print(before - rss())
"""


@glibc
def test_give_back_returns_the_free_pages_between_live_blocks():
    out = subprocess.run([sys.executable, "-c", FRAGMENTS], capture_output=True, text=True, check=True)
    assert int(out.stdout.strip()) >= 60  # of about 135 MB freed between the kept tenth
