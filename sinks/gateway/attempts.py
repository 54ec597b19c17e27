"""Failed key checks per client address, so an API key cannot be guessed by brute force. Pure
bookkeeping: the caller supplies the time.

An address that failed ``limit`` times within ``window_s`` is refused until its oldest failure in
the window has aged out; a success does not clear failures (a valid key does not license guessing
others from the same address).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class FailedAttempts:
    limit: int = 10
    window_s: float = 60.0
    max_addresses: int = 100_000  # bound on memory under a spray from many addresses
    _seen: dict[str, deque[float]] = field(default_factory=dict)

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self._seen.get(address, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            self._seen.pop(address, None)
        return times

    def retry_after(self, address: str, now: float) -> float:
        """Seconds until ``address`` may try again; 0 when it may now."""
        times = self._recent(address, now)
        if len(times) < self.limit:
            return 0.0
        return times[-self.limit] + self.window_s - now

    def failed(self, address: str, now: float) -> None:
        if address not in self._seen and len(self._seen) >= self.max_addresses:
            self._seen.pop(next(iter(self._seen)))  # the longest-known address goes first
        times = self._seen.setdefault(address, deque())
        times.append(now)
        while len(times) > self.limit:
            times.popleft()
