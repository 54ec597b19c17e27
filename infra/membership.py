"""Static consumer-group membership ids (KIP-345) that a restarted process gets back by itself.

A consumer group member with a static id that restarts takes its partitions back at once; a
dynamic member that dies keeps them until the broker evicts it (after the session timeout on
Kafka; never, on the embedded broker). So every worker and store sink is static by default, with
the id ``<host>-<role>-<slot>``: the lowest slot that no live process of the same group on this
host holds. A slot is held by an exclusive ``flock`` on a file under the cache directory, which
the kernel releases however the process ends (SIGKILL included), so a process started after a
crash finds its old slot free and rejoins under its old id. An explicit id (a setting) is held
the same way, and a second live process asking for it is refused: two live members with one id
would fence each other out of the group.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import IO

MAX_SLOTS = 256


class MembershipError(RuntimeError):
    """The asked-for static member id is held by another live process."""


@dataclass
class Membership:
    """A claimed member id; the claim lasts until ``release`` or the end of the process."""

    instance_id: str
    _lock: IO[bytes]
    _path: Path

    def release(self) -> None:
        """Give the id back and remove its lock file (nothing is left behind after a clean stop)."""
        self._path.unlink(missing_ok=True)
        self._lock.close()


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def _try_lock(path: Path) -> IO[bytes] | None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        handle = path.open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        # A releasing holder may have removed the file between our open and our lock: then the
        # lock is on a file nobody else will see; take the one now at the path instead.
        try:
            if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                break
        except FileNotFoundError:
            pass
        handle.close()
    else:
        return None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n".encode())
    handle.flush()
    return handle


def claim(role: str, group: str, lock_dir: Path, explicit: str | None = None,
          host: str | None = None) -> Membership:
    """Claim a static member id for a ``role`` (worker, sink) of consumer ``group``: ``explicit``
    if given (MembershipError if a live process holds it), else ``<host>-<role>-<slot>``."""
    folder = Path(lock_dir) / _safe(group)
    if explicit:
        lock = _try_lock(folder / f"id-{_safe(explicit)}.lock")
        if lock is None:
            raise MembershipError(f"static member id {explicit!r} of group {group!r} is held by another live "
                                  f"process on this host (see {folder}): give each {role} its own id, or none")
        return Membership(explicit, lock, folder / f"id-{_safe(explicit)}.lock")
    name = _safe(host or socket.gethostname())
    for slot in range(MAX_SLOTS):
        lock = _try_lock(folder / f"{role}-{slot}.lock")
        if lock is not None:
            return Membership(f"{name}-{role}-{slot}", lock, folder / f"{role}-{slot}.lock")
    raise MembershipError(f"{MAX_SLOTS} {role}s of group {group!r} already run on this host")
