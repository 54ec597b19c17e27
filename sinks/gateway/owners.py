"""The store's device -> tenant map, cached in the gateway.

The delivery loop asks, for every result sent to a follower, whether the follower's tenant owns
the result's device; it must not query PostgreSQL for each, so it reads this cache. HTTP routes
and new followers refresh it (at most every ``max_age_s``) before they answer; a miss (a device
assigned since) reloads it at most every ``miss_reload_s``. A device in no tenant's map is
visible to admin keys only: a miss refuses.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool


class DeviceOwners:
    def __init__(self, load: Callable[[], dict[str, str]], max_age_s: float = 5.0, miss_reload_s: float = 1.0) -> None:
        self._load = load
        self.max_age_s = max_age_s
        self.miss_reload_s = miss_reload_s
        self._map: dict[str, str] = {}
        self._loaded = float("-inf")  # monotonic time of the last load

    async def fresh(self, force: bool = False) -> None:
        """Reload the map if it is older than ``max_age_s`` (or ``force``)."""
        if force or time.monotonic() - self._loaded > self.max_age_s:
            started = time.monotonic()
            self._map = await run_in_threadpool(self._load)
            self._loaded = started

    def visible(self, tenant: str | None, device_id: str) -> bool:
        """Whether ``tenant`` (None: every tenant) may see what ``device_id`` captured, by the map
        as last loaded."""
        return tenant is None or self._map.get(device_id) == tenant

    async def check(self, tenant: str | None, device_id: str) -> bool:
        """``visible``, reloading the map first on a miss if it is older than ``miss_reload_s``
        (so a device assigned a moment ago is seen without a query per result)."""
        if self.visible(tenant, device_id):
            return True
        if time.monotonic() - self._loaded > self.miss_reload_s:
            await self.fresh(force=True)
        return self.visible(tenant, device_id)
