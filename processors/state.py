"""Per-face session state, partitioned like the frames and made durable in a changelog topic.

Frames are keyed by face key, so a face's frames all land in one frames partition; its state
lives in the changelog partition with the same number. The worker that owns frames partition
``p`` therefore restores exactly its faces by replaying changelog partition ``p``. Values are the
session as compact JSON; a deletion is a tombstone (null, or ``b""`` from brokers such as noida-db
that return tombstones as empty values).

This module is pure bookkeeping (no Kafka): ``processors.worker`` does the I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from processors.session import FaceSession

Write = tuple[int, bytes, bytes | None]  # (partition, key, value or None for a tombstone)


def dump_session(session: FaceSession) -> bytes:
    return json.dumps(session.to_dict(), separators=(",", ":")).encode()


def load_session(raw: bytes | None) -> FaceSession | None:
    """A changelog value -> FaceSession; None for a tombstone."""
    return FaceSession.from_dict(json.loads(raw)) if raw else None


class SessionStore:
    """Sessions of the partitions this worker owns, and the changelog writes not yet flushed."""

    def __init__(self) -> None:
        self._parts: dict[int, dict[str, FaceSession]] = {}
        self._dirty: dict[tuple[int, str], bool] = {}  # (partition, key) -> deleted?

    def __len__(self) -> int:
        return sum(len(p) for p in self._parts.values())

    @property
    def partitions(self) -> set[int]:
        return set(self._parts)

    def sessions(self, partition: int) -> dict[str, FaceSession]:
        """The live sessions of ``partition`` (opening an empty one if needed)."""
        return self._parts.setdefault(partition, {})

    def items(self) -> Iterator[tuple[int, str, FaceSession]]:
        for p, sessions in self._parts.items():
            for key, session in sessions.items():
                yield p, key, session

    def put(self, partition: int, key: str, session: FaceSession) -> None:
        self.sessions(partition)[key] = session
        self._dirty[(partition, key)] = False

    def delete(self, partition: int, key: str) -> None:
        self.sessions(partition).pop(key, None)
        self._dirty[(partition, key)] = True

    def restore(self, partition: int, records: Iterable[tuple[bytes, bytes | None]]) -> int:
        """Replay changelog records of ``partition`` in offset order (last write wins); returns
        the number of live sessions restored. Undecodable values are skipped: a corrupt record
        must not stop a worker from starting (the face then starts a new session)."""
        sessions = self.sessions(partition)
        for key, value in records:
            k = key.decode(errors="replace")
            try:
                session = load_session(value)
            except (ValueError, TypeError):
                session = None
            if session is None:
                sessions.pop(k, None)
            else:
                sessions[k] = session
        return len(sessions)

    def keep_only(self, partitions: Iterable[int]) -> set[int]:
        """Forget every partition not in ``partitions`` (moved to another worker); returns the
        partitions of ``partitions`` that still need restoring."""
        keep = set(partitions)
        for p in list(self._parts):
            if p not in keep:
                del self._parts[p]
        self._dirty = {k: v for k, v in self._dirty.items() if k[0] in keep}
        return keep - set(self._parts)

    def take_writes(self) -> list[Write]:
        """The changelog records that make the topic match memory; clears the pending set."""
        out: list[Write] = []
        for (p, key), deleted in self._dirty.items():
            session = None if deleted else self._parts.get(p, {}).get(key)
            out.append((p, key.encode(), None if session is None else dump_session(session)))
        self._dirty.clear()
        return out
