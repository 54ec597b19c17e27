"""Which tenant owns which device, and so whose sessions a key may see.

A session belongs to the device that captured it. A Mojo client's frames carry its key's namespace
as their device id, so those devices belong to the key's tenant by construction; an edge device
publishes to Kafka without a key and is assigned to a tenant by an operator
(``facestream devices assign``). A device nobody owns is visible to admin keys only.

``tenant=None`` everywhere below means "every tenant" (admin keys, the database owner's CLI).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import psycopg

audit = logging.getLogger("facestream.audit")

# A WHERE-clause fragment: the row's device belongs to %(tenant)s, or %(tenant)s is NULL (all).
VISIBLE = ("(%(tenant)s::text IS NULL OR device_id IN "
           "(SELECT o.device_id FROM device_owners o WHERE o.tenant = %(tenant)s))")


@dataclass(frozen=True)
class DeviceOwner:
    device_id: str
    tenant: str
    via: str  # "key" (a Mojo key's namespace) or "assigned" (an edge device)
    assigned: datetime | None = None


def owners(conn: psycopg.Connection) -> dict[str, str]:
    """Every owned device id -> its tenant."""
    return dict(conn.execute("SELECT device_id, tenant FROM device_owners").fetchall())


def assign_device(conn: psycopg.Connection, device_id: str, tenant: str) -> DeviceOwner:
    """Make ``tenant`` the owner of edge device ``device_id`` (replacing any earlier owner)."""
    if not device_id.strip() or not tenant.strip():
        raise ValueError("a device id and a tenant must both be non-empty")
    with conn.transaction():
        if conn.execute("SELECT 1 FROM api_keys WHERE namespace = %s", (device_id,)).fetchone():
            raise ValueError(f"{device_id} is an API key's namespace: its sessions belong to that key's tenant")
        row = conn.execute(
            "INSERT INTO device_tenants (device_id, tenant) VALUES (%s, %s) "
            "ON CONFLICT (device_id) DO UPDATE SET tenant = excluded.tenant, assigned = now() "
            "RETURNING device_id, tenant, assigned", (device_id, tenant)).fetchone()
    audit.info("device %s assigned to tenant %s", device_id, tenant)
    return DeviceOwner(row[0], row[1], "assigned", row[2])


def unassign_device(conn: psycopg.Connection, device_id: str) -> bool:
    """Whether ``device_id`` had an owner (its sessions are now visible to admin keys only)."""
    with conn.transaction():
        gone = conn.execute("DELETE FROM device_tenants WHERE device_id = %s", (device_id,)).rowcount == 1
    if gone:
        audit.info("device %s unassigned", device_id)
    return gone


def assigned_devices(conn: psycopg.Connection, tenant: str | None = None) -> list[DeviceOwner]:
    """The edge devices assigned to ``tenant`` (every tenant if None), by tenant then device."""
    rows = conn.execute("SELECT device_id, tenant, assigned FROM device_tenants "
                        "WHERE %(tenant)s::text IS NULL OR tenant = %(tenant)s ORDER BY tenant, device_id",
                        {"tenant": tenant}).fetchall()
    return [DeviceOwner(d, t, "assigned", a) for d, t, a in rows]


def session_devices(conn: psycopg.Connection, session_id: str) -> set[str]:
    """The devices a stored session was captured on (empty if the store has not seen it)."""
    return {d for (d,) in conn.execute("SELECT DISTINCT device_id FROM sessions WHERE session_id = %s",
                                       (session_id,))}
