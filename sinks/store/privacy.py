"""Erasing a person's data on request: every stored row of a session (or of every session of a
device), and the face keys whose latest state the worker keeps in its changelog, which the caller
tombstones (``facestream forget`` does both).

What this cannot reach: records already on the results and frames topics stay until their
retention drops them (``FACESTREAM_RESULTS_RETENTION_MS``, ``FACESTREAM_FRAMES_RETENTION_MS``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import psycopg

audit = logging.getLogger("facestream.audit")
TABLES = ("face_results", "session_summaries", "sessions")


@dataclass
class Forgotten:
    """What ``forget`` deleted: rows per table, and the face keys to tombstone in the changelog."""

    rows: dict[str, int] = field(default_factory=dict)
    face_keys: list[str] = field(default_factory=list)


def seconds_since_last_frame(conn: psycopg.Connection, *, session: str | None = None,
                             device: str | None = None) -> float | None:
    """Seconds since the latest stored frame of the session (or device); None if none is stored."""
    column, value = ("session_id", session) if session is not None else ("device_id", device)
    (ago,) = conn.execute(f"SELECT extract(epoch FROM now() - max(last_capture)) FROM sessions WHERE {column} = %s",
                          (value,)).fetchone()
    return None if ago is None else float(ago)


def forget(conn: psycopg.Connection, *, session: str | None = None, device: str | None = None) -> Forgotten:
    """Delete, in one transaction, every row of session ``session`` or of every session of device
    ``device`` from every table that holds them. Exactly one of the two must be given."""
    if (session is None) == (device is None):
        raise ValueError("name exactly one of a session or a device to forget")
    column, value = ("session_id", session) if session is not None else ("device_id", device)
    out = Forgotten()
    with conn.transaction():
        keys: set[str] = set()
        for table in TABLES:
            keys |= {k for (k,) in conn.execute(f"SELECT DISTINCT face_key FROM {table} WHERE {column} = %s",
                                                (value,))}
        for table in TABLES:
            out.rows[table] = conn.execute(f"DELETE FROM {table} WHERE {column} = %s", (value,)).rowcount
    out.face_keys = sorted(keys)
    audit.info("forgot %s %s: %s; %d face keys to tombstone", "session" if session is not None else "device",
               value, ", ".join(f"{t} {n}" for t, n in out.rows.items()), len(out.face_keys))
    return out
