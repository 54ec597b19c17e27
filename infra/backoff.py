"""How long to wait before trying a failed operation again: one rule for every part that retries
(the worker's batches, the store's writes, the wait for the database)."""

from __future__ import annotations


def retry_delay_s(attempt: int, first_s: float = 0.5, most_s: float = 30.0) -> float:
    """Seconds before trying again after the ``attempt``-th failure in a row (1, 2, ...): doubling
    from ``first_s``, at most ``most_s``."""
    return min(most_s, first_s * 2 ** (attempt - 1))
