"""What the commands share: the consoles, the settings, and starting the embedded services."""

from __future__ import annotations

import click
from rich.console import Console

from infra.settings import Settings

console = Console()


err = Console(stderr=True)


def settings() -> Settings:
    # Read the environment afresh on every command (an embedding process may change it).
    return Settings()


def ensure_broker(s: Settings) -> None:
    """Start the embedded broker when no external one is configured, then create topics."""
    from infra.embedded import EmbeddedError, start_broker
    from infra.topics import ensure_topics

    try:
        if s.embedded:
            st = start_broker(s)
            err.print(f"embedded broker (noida-db) on {st.address}, pid {st.pid}")
        created = ensure_topics(s)
    except (EmbeddedError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    if created:
        err.print(f"created topics: {', '.join(created)} ({s.partitions} partitions each)")


def database(s: Settings, migrate: bool = True, wait: bool = False) -> str:
    """The database URL: DATABASE_URL, or the embedded PostgreSQL (started if needed). ``wait``:
    a long-running service started while PostgreSQL does not answer waits for it (saying so)
    instead of exiting."""
    from sinks.store.db import StoreError, connect, database_url, migrate_when_up
    from sinks.store.db import migrate as apply

    def retry(why: str, delay: float | None) -> None:
        err.print(f"PostgreSQL unavailable at start ({why}); retrying in {delay:.1f} s")

    try:
        url = database_url(s)
        if migrate:
            if wait:
                applied = migrate_when_up(url, on_retry=retry) or []
            else:
                with connect(url) as conn:
                    applied = apply(conn)
            if applied:
                err.print(f"database migrated: {', '.join(applied)}")
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    return url


def print_rows(rows: list[dict], as_json: bool = False) -> None:
    """Query rows as a table (floats to 3 places), or as JSON lines."""
    import json

    from rich.table import Table

    if as_json:
        for r in rows:
            console.print(json.dumps(r, default=str), soft_wrap=True, highlight=False)
        return
    if not rows:
        err.print("no rows")
        return
    t = Table(*rows[0].keys())
    for r in rows:
        t.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r.values()))
    console.print(t)
