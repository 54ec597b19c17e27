"""Failed key checks per address (pure bookkeeping; the HTTP side is in test_gateway)."""

from hypothesis import given
from hypothesis import strategies as st

from sinks.gateway.attempts import FailedAttempts


def test_an_address_is_refused_after_the_limit_until_its_failures_age_out():
    a = FailedAttempts(limit=3, window_s=60)
    for t in (0.0, 10.0, 20.0):
        assert a.retry_after("1.2.3.4", t) == 0
        a.failed("1.2.3.4", t)
    assert a.retry_after("1.2.3.4", 21.0) == 39.0  # the first failure ages out at 60
    assert a.retry_after("5.6.7.8", 21.0) == 0  # other addresses are not affected
    assert a.retry_after("1.2.3.4", 60.0) == 0


def test_memory_stays_bounded_under_a_spray_of_addresses():
    a = FailedAttempts(limit=2, window_s=60, max_addresses=100)
    for i in range(1000):
        a.failed(f"10.0.{i // 256}.{i % 256}", float(i) / 1000)
    assert len(a._seen) <= 100


@given(st.lists(st.floats(min_value=0, max_value=600, allow_nan=False), max_size=40), st.integers(1, 8))
def test_never_more_than_limit_failures_pass_in_any_window(times, limit):
    """Whatever the failure times, an address that is let through (retry_after 0) has fewer than
    ``limit`` failures within the window before it."""
    a = FailedAttempts(limit=limit, window_s=60)
    seen = []
    for t in sorted(times):
        if a.retry_after("x", t) == 0:
            assert sum(1 for s in seen if s > t - 60) < limit
            a.failed("x", t)
            seen.append(t)
