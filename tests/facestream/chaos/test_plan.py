"""The chaos run's fault schedule (pure: a seed in, faults out)."""

from __future__ import annotations

import pytest

from facestream.chaos.plan import KINDS, PlanParams, plan


def test_each_kind_gets_its_faults_inside_the_window_without_overlapping_itself():
    p = PlanParams(postgres_stop_s=(10.0, 30.0), gateways=2, workers=2)
    faults = plan(seed=3, start_s=25.0, end_s=260.0, per_kind=5, p=p)
    assert [f.at_s for f in faults] == sorted(f.at_s for f in faults)
    for kind in KINDS:
        mine = [f for f in faults if f.kind == kind]
        assert len(mine) == 5, kind
        assert all(25.0 <= f.at_s and f.until_s <= 260.0 for f in mine), kind
        # The next fault of a kind waits for the last one's part to be back and booted.
        assert all(b.at_s >= a.until_s + p.settle_s - 0.02 for a, b in zip(mine, mine[1:])), kind
    holds = [f.down_s for f in faults if f.kind == "postgres"]
    assert all(10.0 <= h <= 30.0 for h in holds) and len(set(holds)) > 1
    assert {f.target for f in faults if f.kind == "gateway"} <= {0, 1}
    assert {f.target for f in faults if f.kind == "worker"} <= {0, 1}


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another():
    assert plan(1, 0, 200, 3) == plan(1, 0, 200, 3)
    assert plan(1, 0, 200, 3) != plan(2, 0, 200, 3)


def test_a_window_too_short_for_the_faults_is_refused_with_what_to_do():
    with pytest.raises(ValueError, match="run longer or with fewer faults"):
        plan(0, 0, 100, 5, ("postgres",), PlanParams(postgres_stop_s=(10.0, 30.0)))
