"""Native libraries' log lines kept off the terminal, at the file-descriptor level.

MediaPipe, TFLite/LiteRT and absl write their own log lines (``W0000 ...``, ``INFO: Created
TensorFlow Lite XNNPACK delegate``, accelerator registry lines) straight to file descriptor 2,
past Python's logging. While ``filtered()`` is active, fd 2 is a pipe read by a thread that drops
those lines and passes every other line (our own warnings and errors, tracebacks) through to the
real stderr unchanged.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# glog/absl lines (severity letter, date, time, thread id, file:line]), TFLite/LiteRT's "INFO: "
# lines, and absl's notice about logging before InitializeLog.
NATIVE = re.compile(rb"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w./-]+:\d+\]|INFO: |"
                    rb"WARNING: All log messages before absl::InitializeLog\(\)|"
                    rb"WARNING: Logging before InitGoogle\(\))")


def is_native(line: bytes) -> bool:
    return bool(NATIVE.match(line))


@contextmanager
def filtered(enabled: bool = True) -> Iterator[None]:
    """Drop native libraries' lines from fd 2 while inside (a no-op when not ``enabled``)."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    real = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        rest = b""
        with os.fdopen(read_end, "rb", buffering=0) as src:
            for chunk in iter(lambda: src.read(65536), b""):
                *lines, rest = (rest + chunk).split(b"\n")
                kept = b"".join(line + b"\n" for line in lines if not is_native(line))
                if kept:
                    os.write(real, kept)
        if rest and not is_native(rest):
            os.write(real, rest)

    thread = threading.Thread(target=pump, name="native-noise-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)  # the pipe's last writer here closes: the thread drains it and ends
        thread.join(timeout=2.0)
        os.close(real)
