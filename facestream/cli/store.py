"""Commands over the PostgreSQL store: migrations and grants, API keys, analytics queries."""

from __future__ import annotations

import click
from rich.table import Column, Table

from facestream.cli.common import console, database, ensure_broker, err, print_rows, settings
from facestream.cli.main import main


def _store():
    """A connection to the store as configured (the owner's DATABASE_URL for these commands)."""
    from sinks.store.db import connect

    return connect(database(settings()))


@main.group()
def db() -> None:
    """Database administration (run with the owner's DATABASE_URL)."""


@db.command("migrate")
def db_migrate() -> None:
    """Apply the store's pending migrations."""
    database(settings())
    console.print("database is up to date")


@db.command("grant")
@click.argument("role")
def db_grant(role: str) -> None:
    """Let ROLE (an existing login role) run the services: read and write data, create the day's
    partition through a vetted function, and never change the schema."""
    from sinks.store.db import grant_runtime_role

    with _store() as conn:
        grant_runtime_role(conn, role)
    console.print(f"granted {role} the runtime rights; point the services' DATABASE_URL at it")


@main.group()
def keys() -> None:
    """API keys (stored hashed): scopes, tenant, expiry."""


@keys.command("create")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, default=("ingest",), show_default=True,
              type=click.Choice(["ingest", "read", "admin"]),
              help="ingest: Mojo clients and edge producers; read: dashboards, analytics, the image API; "
                   "admin: keys and deletion (and everything else); repeatable")
@click.option("--tenant", default=None, help="whose sessions the key may see [default: NAME]")
@click.option("--expires-days", type=click.FloatRange(min=0, min_open=True), default=None,
              help="the key stops working after this many days [default: never]")
def keys_create(name: str, scopes: tuple[str, ...], tenant: str | None, expires_days: float | None) -> None:
    """Create a key; it is shown once."""
    from datetime import timedelta

    from sinks.gateway.auth import create_key

    with _store() as conn:
        secret, key = create_key(conn, name, scopes, tenant,
                                 None if expires_days is None else timedelta(days=expires_days))
    expires = f", expires {str(key.expires)[:19]}" if key.expires else ""
    console.print(f"key {key.key_id} ({key.name}), tenant {key.tenant}, scopes {', '.join(key.scopes)}, "
                  f"namespace {key.namespace}{expires}")
    console.print(secret, soft_wrap=True)
    err.print("store it now: only its hash is kept")


@keys.command("list")
def keys_list() -> None:
    """List keys (never their secrets)."""
    from sinks.gateway.auth import list_keys

    with _store() as conn:
        rows = list_keys(conn)
    # The key id is what `revoke` takes: never shortened, however narrow the terminal.
    t = Table(Column("key id", no_wrap=True, min_width=12), "name", "tenant", "scopes", "namespace", "created",
              "expires", "last used", "revoked")

    def when(t: object | None) -> str:
        return str(t)[:19] if t else ""

    for k in rows:
        t.add_row(k.key_id, k.name, k.tenant, ",".join(k.scopes), k.namespace, when(k.created), when(k.expires),
                  when(k.last_used) or "never", when(k.revoked))
    console.print(t)


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key: it gets no new tokens."""
    from sinks.gateway.auth import revoke_key

    with _store() as conn:
        if not revoke_key(conn, key_id):
            raise click.ClickException(f"no active key {key_id}")
    console.print(f"revoked {key_id}")


@main.group()
def devices() -> None:
    """Which tenant owns which edge device (a Mojo key's sessions are its tenant's already)."""


@devices.command("assign")
@click.argument("device_id")
@click.option("--tenant", required=True, help="the tenant whose read keys may see this device's sessions")
def devices_assign(device_id: str, tenant: str) -> None:
    """Give an edge device's sessions to a tenant (replacing an earlier owner)."""
    from sinks.store.tenants import assign_device

    with _store() as conn:
        try:
            owner = assign_device(conn, device_id, tenant)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    console.print(f"device {owner.device_id} belongs to tenant {owner.tenant}: its read keys see its sessions")


@devices.command("unassign")
@click.argument("device_id")
def devices_unassign(device_id: str) -> None:
    """Take a device from its tenant: only admin keys see its sessions afterwards."""
    from sinks.store.tenants import unassign_device

    with _store() as conn:
        if not unassign_device(conn, device_id):
            raise click.ClickException(f"device {device_id} is not assigned to a tenant")
    console.print(f"device {device_id} unassigned: only admin keys see its sessions")


@devices.command("list")
@click.option("--tenant", default=None, help="only this tenant's devices")
def devices_list(tenant: str | None) -> None:
    """Edge devices and their tenants."""
    from sinks.store.tenants import assigned_devices

    with _store() as conn:
        rows = assigned_devices(conn, tenant)
    print_rows([{"device": d.device_id, "tenant": d.tenant, "assigned": str(d.assigned)[:19]} for d in rows])


@main.command()
@click.option("--session", "session_id", help="a capture session's id (a Mojo connection, a device's run)")
@click.option("--device", "device_id", help="every session of this device (or Mojo namespace)")
@click.option("--force", is_flag=True, help="erase even if frames arrived in the last minute")
def forget(session_id: str | None, device_id: str | None, force: bool) -> None:
    """Erase a session's (or a device's) data: its rows in every table, and its faces' state in the
    worker's changelog (tombstones). Run it as the database owner, once the session has ended."""
    import psycopg
    from kafka import KafkaProducer

    from infra.topics import changelog_topic
    from sinks.store.privacy import forget as erase
    from sinks.store.privacy import seconds_since_last_frame

    if (session_id is None) == (device_id is None):
        raise click.UsageError("name exactly one of --session or --device")
    s = settings()
    what = f"session {session_id}" if session_id else f"device {device_id}"
    try:
        with _store() as conn:
            ago = seconds_since_last_frame(conn, session=session_id, device=device_id)
            # Frames still arriving would be stored again (and start a new state): stop them first.
            if ago is not None and ago < max(60.0, 2 * s.session_gap_s) and not force:
                raise click.ClickException(
                    f"{what} stored a frame {max(ago, 0):.0f} s ago and may still be live: frames that keep "
                    "arriving would be stored again. Stop its client or device first, or pass --force.")
            gone = erase(conn, session=session_id, device=device_id)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise click.ClickException(f"this database role may not delete ({str(exc).strip()}): run forget with "
                                   "the owner's DATABASE_URL") from exc
    if gone.face_keys:
        ensure_broker(s)
        producer = KafkaProducer(bootstrap_servers=s.bootstrap, acks="all")
        try:
            for key in gone.face_keys:  # same key bytes as the worker's Table: same partition
                producer.send(changelog_topic(s.app_id), key=key.encode(), value=None)
            producer.flush(30)
        finally:
            producer.close(10)
    rows = ", ".join(f"{n} from {t}" for t, n in gone.rows.items())
    console.print(f"forgot {what}: {rows}; "
                  f"{len(gone.face_keys)} face state(s) tombstoned in {changelog_topic(s.app_id)}")


@main.group()
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table")
@click.option("--tenant", default=None, help="only the sessions of this tenant's devices [default: every tenant]")
@click.pass_context
def query(ctx: click.Context, as_json: bool, tenant: str | None) -> None:
    """Analytics over the store."""
    ctx.obj = {"json": as_json, "tenant": tenant}


def _print_rows(ctx: click.Context, rows: list[dict]) -> None:
    print_rows(rows, as_json=ctx.obj["json"])


def _when(value: str | None):
    from datetime import datetime, timezone

    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not ISO-8601 (e.g. 2026-11-24T10:00)") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


@query.command("sessions")
@click.option("--device")
@click.option("--since", help="ISO-8601, UTC unless it says otherwise")
@click.option("--until")
@click.option("--limit", default=100, show_default=True)
@click.pass_context
def query_sessions(ctx: click.Context, device: str | None, since: str | None, until: str | None, limit: int) -> None:
    """Sessions by time range and device."""
    from sinks.store import queries

    with _store() as conn:
        _print_rows(ctx, queries.sessions(conn, device=device, since=_when(since), until=_when(until), limit=limit,
                                              tenant=ctx.obj["tenant"]))


@query.command("session")
@click.argument("session_id")
@click.pass_context
def query_session(ctx: click.Context, session_id: str) -> None:
    """Per-face summary of one session."""
    from sinks.store import queries

    with _store() as conn:
        _print_rows(ctx, queries.session_summary(conn, session_id, tenant=ctx.obj["tenant"]))


@query.command("timeline")
@click.argument("session_id")
@click.option("--face", help="one face key (session/track)")
@click.pass_context
def query_timeline(ctx: click.Context, session_id: str, face: str | None) -> None:
    """Per-minute emotions and cues per face."""
    from sinks.store import queries

    with _store() as conn:
        _print_rows(ctx, queries.timeline(conn, session_id, face, tenant=ctx.obj["tenant"]))


@query.command("distribution")
@click.argument("metric", type=click.Choice(["engagement", "attention"]))
@click.option("--device")
@click.option("--since")
@click.option("--until")
@click.pass_context
def query_distribution(ctx: click.Context, metric: str, device: str | None, since: str | None,
                       until: str | None) -> None:
    """Frames per tenth of engagement or attention."""
    from sinks.store import queries

    with _store() as conn:
        _print_rows(ctx, queries.distribution(conn, metric, device=device, since=_when(since), until=_when(until),
                                                  tenant=ctx.obj["tenant"]))
