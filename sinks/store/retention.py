"""Dropping results older than the retention (``FACESTREAM_RETENTION_DAYS``), run by the sink.

face_results is partitioned by UTC day, so a day past the retention goes as one DROP TABLE (no
row-by-row delete, no bloat); the sessions and summaries that ended before the kept days go with
it. The work is done by ``facestream_apply_retention`` (migration 004), which runs with the
owner's rights: the services' role can drop nothing else.
"""

from __future__ import annotations

import logging
from datetime import date, datetime

import psycopg

audit = logging.getLogger("facestream.audit")


def partition_day(name: str) -> date:
    """The UTC day a ``face_results_YYYYMMDD`` partition holds."""
    return datetime.strptime(name.rsplit("_", 1)[1], "%Y%m%d").date()


def apply_retention(conn: psycopg.Connection, keep_days: int) -> list[date]:
    """Drop the days of results that ended more than ``keep_days`` whole days ago (and the sessions
    and summaries that ended before them); returns the days dropped, oldest first."""
    if keep_days < 1:
        raise ValueError(f"keep_days must be at least 1, not {keep_days}")
    with conn.transaction():
        names = [n for (n,) in conn.execute("SELECT facestream_apply_retention(%s)", (keep_days,))]
    days = [partition_day(n) for n in names]
    if days:
        audit.info("retention (%d days) dropped face_results of %s", keep_days,
                   ", ".join(d.isoformat() for d in days))
    return days
