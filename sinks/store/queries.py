"""The analytics users ask for, over the SQL views of the store (see migrations/001_init.sql).

Each function takes an open connection and returns a list of dict rows; ``facestream query``
prints them, the dashboard's history API serves ``series``. Filters are pushed into the WHERE
clause so the indexes on (session_id, capture_time) and (device_id, capture_time) are used, and
time ranges prune partitions. ``tenant`` limits every query to the devices that tenant owns
(sinks.store.tenants); None: every tenant.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from schemas.vocabulary import CUES, EMOTIONS
from sinks.store.tenants import VISIBLE

Row = dict[str, Any]


def _rows(conn: psycopg.Connection, sql: str, params: dict[str, Any]) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params).fetchall()


def session_summary(conn: psycopg.Connection, session_id: str, *, tenant: str | None = None) -> list[Row]:
    """One row per face of a capture session: frames, time span, mean emotions and cues."""
    return _rows(conn, f"""
        SELECT r.face_key, r.device_id, r.track_id,
               min(r.capture_time) AS first_capture, max(r.capture_time) AS last_capture,
               count(*) AS frames,
               avg(r.p_neutral) AS neutral, avg(r.p_happy) AS happy, avg(r.p_sad) AS sad,
               avg(r.p_surprise) AS surprise_emotion, avg(r.p_angry) AS angry,
               avg(r.p_fear) AS fear, avg(r.p_disgust) AS disgust,
               mode() WITHIN GROUP (ORDER BY r.emotion) AS dominant_emotion,
               avg(r.amusement) AS amusement, avg(r.surprise) AS surprise, avg(r.confusion) AS confusion,
               avg(r.attention) AS attention, avg(r.engagement) AS engagement,
               count(*) FILTER (WHERE r.engagement_phase = 'engaged') AS engaged_frames,
               max(r.blinks) AS blinks
        FROM face_results r WHERE r.session_id = %(session)s AND {VISIBLE}
        GROUP BY r.face_key, r.device_id, r.track_id ORDER BY r.face_key""", {"session": session_id, "tenant": tenant})


def timeline(conn: psycopg.Connection, session_id: str, face_key: str | None = None, *,
             tenant: str | None = None) -> list[Row]:
    """Per face and minute of a session: mean emotions and cues, most frequent phase/status."""
    return _rows(conn, f"""
        SELECT * FROM face_timeline_minute
        WHERE session_id = %(session)s AND (%(face)s::text IS NULL OR face_key = %(face)s)
          AND face_key IN (SELECT face_key FROM sessions WHERE session_id = %(session)s AND {VISIBLE})
        ORDER BY face_key, minute""", {"session": session_id, "face": face_key, "tenant": tenant})


def series(conn: psycopg.Connection, session_id: str, *, tenant: str | None = None) -> list[Row]:
    """Per face and second of a session (the dashboard's history): mean cues and emotions, most
    frequent phase and status; ``t`` in epoch milliseconds."""
    return _rows(conn, f"""
        SELECT face_key, (extract(epoch FROM date_trunc('second', capture_time)) * 1000)::bigint AS t,
               {', '.join(f'avg({c})::real AS {c}' for c in CUES)},
               {', '.join(f'avg(p_{e})::real AS {e}' for e in EMOTIONS)},
               mode() WITHIN GROUP (ORDER BY engagement_phase) AS phase,
               mode() WITHIN GROUP (ORDER BY interaction_status) AS status
        FROM face_results WHERE session_id = %(session)s AND {VISIBLE}
        GROUP BY face_key, date_trunc('second', capture_time) ORDER BY face_key, t""",
                 {"session": session_id, "tenant": tenant})


def distribution(conn: psycopg.Connection, metric: str, *, device: str | None = None,
                 since: datetime | None = None, until: datetime | None = None,
                 tenant: str | None = None) -> list[Row]:
    """Frames per tenth of ``metric`` (engagement or attention), optionally per device/time."""
    if metric not in ("engagement", "attention"):
        raise ValueError(f"metric must be engagement or attention, not {metric!r}")
    return _rows(conn, f"""
        SELECT least(width_bucket({metric}, 0, 1, 10), 10) AS bucket,
               (least(width_bucket({metric}, 0, 1, 10), 10) - 1) / 10.0 AS low,
               least(width_bucket({metric}, 0, 1, 10), 10) / 10.0 AS high,
               count(*) AS frames
        FROM face_results
        WHERE (%(device)s::text IS NULL OR device_id = %(device)s)
          AND (%(since)s::timestamptz IS NULL OR capture_time >= %(since)s)
          AND (%(until)s::timestamptz IS NULL OR capture_time < %(until)s) AND {VISIBLE}
        GROUP BY 1, 2, 3 ORDER BY 1""", {"device": device, "since": since, "until": until, "tenant": tenant})


def sessions(conn: psycopg.Connection, *, device: str | None = None, since: datetime | None = None,
             until: datetime | None = None, limit: int = 100, tenant: str | None = None) -> list[Row]:
    """Capture sessions overlapping [since, until), newest first, with faces and time span."""
    return _rows(conn, f"""
        SELECT session_id, min(device_id) AS device_id, count(*) AS faces,
               min(first_capture) AS first_capture, max(last_capture) AS last_capture
        FROM sessions
        WHERE (%(device)s::text IS NULL OR device_id = %(device)s)
          AND (%(until)s::timestamptz IS NULL OR first_capture < %(until)s)
          AND (%(since)s::timestamptz IS NULL OR last_capture >= %(since)s) AND {VISIBLE}
        GROUP BY session_id ORDER BY max(last_capture) DESC LIMIT %(limit)s""",
                 {"device": device, "since": since, "until": until, "limit": limit, "tenant": tenant})
