"""Which faults happen when: a pure, seeded schedule.

Each kind of fault happens ``per_kind`` times at random moments of the fault window
``[start_s, end_s)``; two faults of one kind never overlap (the next kill of a worker waits for
the last one's restart and ``settle_s`` more, the time a restarted part takes to boot), faults of
different kinds may. The same seed gives the same schedule.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

KINDS = ("worker", "sink", "gateway", "postgres")


@dataclass(frozen=True)
class Fault:
    at_s: float  # seconds after the load started
    kind: str  # one of KINDS
    down_s: float  # how long the part stays down (killed -> restarted, or stopped -> continued)
    target: int = 0  # which one of several (the gateway or worker process)

    @property
    def until_s(self) -> float:
        return self.at_s + self.down_s


@dataclass(frozen=True)
class PlanParams:
    restart_after_s: float = 1.0  # a killed process is started again after this
    postgres_stop_s: tuple[float, float] = (10.0, 30.0)  # SIGSTOP held for a uniform draw from this
    gateways: int = 2
    workers: int = 1
    settle_s: float = 8.0  # after a part is back, before the next fault of its kind


def plan(seed: int, start_s: float, end_s: float, per_kind: int, kinds: tuple[str, ...] = KINDS,
         p: PlanParams = PlanParams()) -> list[Fault]:
    """``per_kind`` faults of each kind in ``[start_s, end_s)``, sorted by time.

    Raises ValueError when the window cannot hold them (each kind needs ``per_kind`` non-overlapping
    slots)."""
    rng = random.Random(seed)
    out: list[Fault] = []
    for kind in kinds:
        downs = [rng.uniform(*p.postgres_stop_s) if kind == "postgres" else p.restart_after_s
                 for _ in range(per_kind)]
        busy = sum(d + p.settle_s for d in downs)
        slack = (end_s - start_s) - busy
        if slack < 0:
            raise ValueError(f"{per_kind} {kind} faults need {busy:.0f} s; the fault window has "
                             f"{end_s - start_s:.0f} s: run longer or with fewer faults")
        # Random gaps that add up to the slack: sorted uniform cut points.
        cuts = sorted(rng.uniform(0, slack) for _ in range(per_kind))
        t, prev_cut = start_s, 0.0
        for cut, down in zip(cuts, downs):
            t += cut - prev_cut
            prev_cut = cut
            target = {"gateway": p.gateways, "worker": p.workers}.get(kind, 1)
            out.append(Fault(round(t, 2), kind, round(down, 2), rng.randrange(target)))
            t += down + p.settle_s
    return sorted(out, key=lambda f: (f.at_s, f.kind))


def describe(faults: list[Fault]) -> str:
    """One line per fault, for the run's log."""
    return "\n".join(f"{f.at_s:7.1f} s  {f.kind} #{f.target}  down {f.down_s:.1f} s" for f in faults)
