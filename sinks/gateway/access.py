"""Who may do what at the gateway's HTTP routes: API keys with their scopes (``sinks.gateway.auth``),
failed checks limited per client address, and tenants (a key sees only the faces its tenant's
devices captured, ``sinks.store.tenants``; admin keys see all).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from infra import metrics
from infra.settings import Settings
from sinks.gateway import auth
from sinks.gateway.attempts import FailedAttempts
from sinks.gateway.dashboard import LiveBuffer
from sinks.gateway.owners import DeviceOwners
from sinks.store import tenants
from sinks.store.db import connect


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class Access:
    def __init__(self, settings: Settings, database_url: str, live: LiveBuffer) -> None:
        self.s = settings
        self.url = database_url
        self.live = live
        self.owners = DeviceOwners(self._device_owners)
        self.attempts = FailedAttempts(limit=settings.auth_failures_per_minute)

    def _device_owners(self) -> dict[str, str]:
        with connect(self.url) as conn:
            return tenants.owners(conn)

    def _stored_devices(self, session_id: str) -> set[str]:
        with connect(self.url) as conn:
            return tenants.session_devices(conn, session_id)

    async def visible_live(self, key: auth.ApiKey) -> list[dict[str, Any]]:
        """The live buffer's faces whose devices ``key``'s tenant owns."""
        await self.owners.fresh()
        return [f for f in self.live.snapshot() if self.owners.visible(key.sees, f["device_id"])]

    async def check_followable(self, key: auth.ApiKey, session_id: str) -> None:
        """404 when ``session_id`` is known (live here or stored) and captured only on devices
        ``key``'s tenant does not own. An unknown session may be followed: it may start later,
        and its results reach the follower only if its device turns out to be the tenant's."""
        await self.owners.fresh(force=True)
        devices = self.live.devices_of(session_id) | await run_in_threadpool(self._stored_devices, session_id)
        if devices and not any(self.owners.visible(key.sees, d) for d in devices):
            raise HTTPException(404, f"no session {session_id!r} visible to API key {key.key_id} "
                                     f"(tenant {key.tenant})")

    def _key(self, authorization: str | None) -> auth.ApiKey:
        with connect(self.url) as conn:
            return auth.verify_key(conn, authorization)

    async def authorized(self, authorization: str | None, address: str, scope: str) -> auth.ApiKey:
        """The caller's key if it is valid and carries ``scope``. Failed checks count against the
        caller's address: past ``auth_failures_per_minute`` it gets 429 with Retry-After."""
        if wait := self.attempts.retry_after(address, time.monotonic()):
            metrics.AUTH_THROTTLED.inc()
            raise HTTPException(429, f"too many failed API-key checks from {address}; retry in {wait:.0f} s",
                                headers={"Retry-After": str(max(1, round(wait)))})
        try:
            key = await run_in_threadpool(self._key, authorization)
        except auth.AuthError:
            self.attempts.failed(address, time.monotonic())
            raise
        return auth.require(key, scope)

    def _key_by_id(self, key_id: str) -> auth.ApiKey:
        with connect(self.url) as conn:
            return auth.key_by_id(conn, key_id)

    async def viewer(self, request: Request) -> auth.ApiKey:
        """Whoever may read people's data: a ``read`` key in the Authorization header, or a
        dashboard session cookie whose key is still active and may read."""
        if request.headers.get("authorization"):
            return await self.authorized(request.headers["authorization"], client_address(request), "read")
        key_id = auth.dashboard_key_id(self.s, request.cookies.get(auth.DASHBOARD_COOKIE))
        return auth.require(await run_in_threadpool(self._key_by_id, key_id), "read")

    async def sign_in(self, request: Request, key_text: str) -> auth.ApiKey:
        """The dashboard's sign-in: a key with the ``read`` scope, typed into its form."""
        return await self.authorized(key_text, client_address(request), "read")

    async def reader(self, request: Request) -> str:
        """The key id of a caller with the ``read`` scope (the image API)."""
        key = await self.authorized(request.headers.get("authorization"), client_address(request), "read")
        return key.key_id
