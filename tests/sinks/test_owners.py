"""The gateway's cached device -> tenant map (pure bookkeeping: the loader is a plain function)."""

from __future__ import annotations

import asyncio

from sinks.gateway.owners import DeviceOwners


def test_a_tenant_sees_its_devices_admin_all_and_a_miss_reloads_at_most_so_often():
    table = {"cam-1": "acme"}
    loads: list[int] = []

    def load() -> dict[str, str]:
        loads.append(1)
        return dict(table)

    async def run() -> None:
        owners = DeviceOwners(load, max_age_s=60, miss_reload_s=0.2)
        assert not owners.visible("acme", "cam-1"), "nothing loaded yet: refuse, never guess"
        await owners.fresh()
        assert owners.visible("acme", "cam-1") and not owners.visible("globex", "cam-1")
        assert owners.visible(None, "cam-9"), "None is every tenant (admin keys)"
        await owners.fresh()  # fresh enough: no reload
        assert len(loads) == 1
        table["cam-2"] = "acme"  # assigned meanwhile
        assert not await owners.check("acme", "cam-2"), "a miss right after a load does not reload"
        assert len(loads) == 1
        await asyncio.sleep(0.25)
        assert await owners.check("acme", "cam-2") and len(loads) == 2  # the miss reloaded
        assert not await owners.check("globex", "cam-2") and len(loads) == 2  # too soon to reload again
        assert await owners.check("acme", "cam-1") and len(loads) == 2  # hits never reload
        await owners.fresh(force=True)
        assert len(loads) == 3

    asyncio.run(run())
