"""How the chaos run carries out a fault and judges the recovery (bookkeeping only: the parts are
stand-ins that do what the real ones were seen to do; the one-minute run uses the real ones)."""

from __future__ import annotations

import time
from types import SimpleNamespace

from facestream.chaos.load import Connection
from facestream.chaos.plan import Fault
from facestream.chaos.run import FaultRecord, _Faults


class _Parts:
    """A gateway whose clients reconnect to the other gateway before its killer is back: the
    kernel closes a killed process's sockets before its parent has reaped it."""

    def __init__(self, mojo: SimpleNamespace) -> None:
        self.mojo, self.s, self.started = mojo, SimpleNamespace(), []

    def kill(self, name: str) -> None:
        for c in list(self.mojo.connections):
            if c.closed is None:
                c.closed = time.monotonic()
                self.mojo.connections.append(Connection(client=c.client, gateway=1, opened=time.monotonic(),
                                                        sent=3, received=3))
        time.sleep(0.05)  # waiting for the dead process

    def start(self, name: str) -> None:
        self.started.append(name)


def test_clients_back_before_the_killed_gateway_is_reaped_count_as_recovered():
    """Found by the one-minute run: a killed gateway's clients were back on the other gateway
    within a second, yet the run reported them "not seen within 120 s" and ran two minutes long:
    their new connections opened before the harness noted the kill, so they looked old."""
    mojo = SimpleNamespace(connections=[Connection(client=0, gateway=0, opened=time.monotonic(), sent=9,
                                                   received=9)])
    parts = _Parts(mojo)
    rec = FaultRecord(Fault(at_s=0.0, kind="gateway", down_s=0.1, target=0))
    _Faults(parts, obs=None, mojo=mojo, t0=time.monotonic(), timeout_s=3.0).apply(rec.fault, rec)
    assert parts.started == ["gateway-0"] and not rec.error
    assert rec.recovery_s is not None and rec.recovery_s < 1.0, rec.recovery_s


def test_a_connection_counts_as_killed_by_the_fault_not_by_what_its_client_saw():
    """Found in loaded runs: connections an overloaded gateway dropped (never killed) were counted
    with the killed ones, and their unanswered frames excused."""
    from facestream.chaos.verdict import mojo_gaps

    on_killed = Connection(client=0, gateway=0, opened=time.monotonic(), sent=9, received=5)
    on_other = Connection(client=1, gateway=1, opened=time.monotonic(), sent=9, received=9)
    mojo = SimpleNamespace(connections=[on_killed, on_other])
    rec = FaultRecord(Fault(at_s=0.0, kind="gateway", down_s=0.1, target=0))
    _Faults(_Parts(mojo), obs=None, mojo=mojo, t0=time.monotonic(), timeout_s=1.0).apply(rec.fault, rec)
    assert on_killed.killed and not on_other.killed
    dropped = Connection(client=1, gateway=1, opened=time.monotonic(), sent=7, received=4, closed=time.monotonic())
    assert mojo_gaps([on_killed, on_other, dropped]) == (4, 3), "the dropped connection's 3 are not excused"


def test_connections_dropped_without_a_kill_are_counted_by_the_reason_their_client_was_given():
    from facestream.chaos.table import _drops
    from facestream.chaos.verdict import drops_without_kill

    now = time.monotonic()
    killed = Connection(client=0, gateway=0, opened=now, sent=9, received=5, closed=now, killed=True,
                        reason="transport error")
    ping = [Connection(client=i, gateway=1, opened=now, sent=9, received=9 - i, closed=now, reason="ping timeout")
            for i in (1, 2)]
    unknown = Connection(client=3, gateway=1, opened=now, sent=4, received=4, closed=now)
    still_up = Connection(client=4, gateway=1, opened=now, sent=9, received=1)
    drops = drops_without_kill([killed, *ping, unknown, still_up])
    assert drops == {"ping timeout": (2, 3), "unknown": (1, 0)}
    assert _drops(drops) == "; dropped without a kill: ping timeout: 2 with 3 gaps, unknown: 1 with 0 gaps"
    assert _drops({}) == ""
