"""The one retry rule (pure)."""

from __future__ import annotations

from infra.backoff import retry_delay_s


def test_a_failure_in_a_row_waits_longer_each_time_up_to_half_a_minute():
    assert [retry_delay_s(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert retry_delay_s(20) == 30.0
