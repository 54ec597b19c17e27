"""PostgreSQL connection, migrations, partitions, and the embedded server.

With no ``DATABASE_URL``, the store uses an embedded PostgreSQL 16 from the ``pgserver`` wheel,
started on a Unix socket under ``<data_dir>/postgres`` and left running (like the embedded
broker) until ``facestream down``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import date
from importlib import resources
from pathlib import Path

import psycopg

from infra.backoff import retry_delay_s
from infra.settings import Settings

log = logging.getLogger(__name__)

# A fixed key for pg_advisory_xact_lock: one migrator at a time across processes.
_MIGRATION_LOCK = 0x6661636573


class StoreError(RuntimeError):
    """The database is unreachable or not in a usable state."""


def _pgdata(s: Settings) -> Path:
    return (s.data_dir / "postgres").resolve()


def embedded_url(s: Settings) -> str:
    """Start (if needed) the embedded PostgreSQL and return its URL."""
    import pgserver

    pgdata = _pgdata(s)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = pgserver.get_server(pgdata, cleanup_mode=None)  # keep running after we exit
    except Exception as exc:  # pgserver raises plain Exceptions with pg_ctl's output
        raise StoreError(f"could not start the embedded PostgreSQL in {pgdata}: {exc}. "
                         f"See {pgdata / 'log'}, or set DATABASE_URL to a running server.") from exc
    return server.get_uri("postgres")


def embedded_running(s: Settings) -> bool:
    """Whether the embedded PostgreSQL of ``s.data_dir`` runs (its postmaster.pid exists)."""
    return (_pgdata(s) / "postmaster.pid").exists()


def embedded_postmaster(s: Settings) -> int | None:
    """The pid of the embedded PostgreSQL's postmaster, if it runs."""
    try:
        return int((_pgdata(s) / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def stop_embedded(s: Settings) -> bool:
    """Stop the embedded PostgreSQL if it runs; True if it was running."""
    if not embedded_running(s):
        return False
    import pgserver

    pgserver.pg_ctl(["-w", "stop"], pgdata=_pgdata(s), user=_system_user())
    return True


def _system_user() -> str | None:
    import os

    # pgserver runs postgres as this user when started by root (postgres refuses to run as root).
    return "pgserver" if os.geteuid() == 0 and _has_user("pgserver") else None


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def database_url(s: Settings) -> str:
    return s.database_url or embedded_url(s)


def connect(url: str, *, autocommit: bool = False, timeout_s: float = 10.0) -> psycopg.Connection:
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=max(1, int(timeout_s)))
    except psycopg.OperationalError as exc:
        raise StoreError(f"cannot connect to PostgreSQL at {_redact(url)}: {str(exc).strip()}. "
                         "Is it running, and is DATABASE_URL right?") from exc


def _redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration shipped in ``sinks/store/migrations``, in order."""
    out = []
    for entry in resources.files("sinks.store").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            out.append((version, entry.name, entry.read_text()))
    return sorted(out)


def pending(conn: psycopg.Connection) -> list[str]:
    """Names of the shipped migrations this database has not applied (no DDL needed to ask)."""
    with conn.transaction():
        if conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is None:
            return [name for _, name, _ in migrations()]
        done = {v for (v,) in conn.execute("SELECT version FROM schema_migrations")}
    return [name for version, name, _ in migrations() if version not in done]


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply the migrations this database lacks, each in its own transaction; returns their names.

    Nothing to do is checked first, so a service running as a role without DDL rights starts
    fine once the owner has migrated (``facestream db migrate`` with the owner's URL)."""
    if not pending(conn):
        return []
    applied: list[str] = []
    try:
        with conn.transaction():
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                         "name text NOT NULL, applied timestamptz NOT NULL DEFAULT now())")
        for version, name, sql in migrations():
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                done = conn.execute("SELECT 1 FROM schema_migrations WHERE version = %s", (version,)).fetchone()
                if done:
                    continue
                conn.execute(sql)
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
                applied.append(name)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise StoreError(f"this database role may not change the schema ({str(exc).strip()}); apply the "
                         "migrations as the owner: DATABASE_URL=<owner url> facestream db migrate") from exc
    return applied


def first_line(exc: BaseException) -> str:
    """An error for a log line: its first line, or its type when it says nothing."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def migrate_when_up(url: str, *, stop: threading.Event | None = None, attempts: int | None = None,
                    on_retry: Callable[[str, float | None], None] | None = None) -> list[str] | None:
    """Connect and apply pending migrations, retrying with backoff (0.5 s doubling to 30 s) while
    PostgreSQL does not answer: a service started during a database outage waits it out instead
    of exiting. ``on_retry(why, delay_s)`` is told each failure (delay None: giving up). Returns
    the migrations applied, or None when ``stop`` was set or ``attempts`` tries failed. A
    database that answers but refuses the migrations (privileges) raises StoreError at once."""
    tried = 0
    while stop is None or not stop.is_set():
        try:
            with connect(url) as conn:
                return migrate(conn)
        except (StoreError, psycopg.OperationalError) as exc:
            cause = exc.__cause__ if isinstance(exc, StoreError) else exc
            if not isinstance(cause, psycopg.OperationalError):
                raise
            tried += 1
            delay = retry_delay_s(tried)
            why = first_line(cause)
            if attempts is not None and tried >= attempts:
                if on_retry is not None:
                    on_retry(why, None)
                return None
            if on_retry is not None:
                on_retry(why, delay)
            if stop is not None:
                stop.wait(delay)
            else:
                time.sleep(delay)
    return None


def grant_runtime_role(conn: psycopg.Connection, role: str) -> None:
    """Let ``role`` read and write the data, create partitions through the SECURITY DEFINER
    function, and nothing else: no CREATE on the schema, no ALTER or DROP (it owns nothing)."""
    from psycopg import sql

    r = sql.Identifier(role)
    with conn.transaction():
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(r))
        conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
        conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA public FROM {}").format(r))
        conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {}").format(r))
        conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION facestream_ensure_partition(date) TO {}").format(r))
        conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION facestream_apply_retention(integer) TO {}").format(r))
        # Tables and views later migrations add are readable and writable by the role too.
        conn.execute(sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE ON TABLES "
                             "TO {}").format(r))


def ensure_partitions(conn: psycopg.Connection, days: set[date], known: set[date]) -> None:
    """Create the daily partitions of face_results for ``days`` not yet in ``known``.

    Call inside a transaction: an advisory lock keeps concurrent sinks from racing on the DDL."""
    missing = sorted(days - known)
    if missing:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
    for day in missing:
        conn.execute("SELECT facestream_ensure_partition(%s)", (day,))
        known.add(day)
