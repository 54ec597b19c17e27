"""Token buckets by name (an API key id, a Socket.IO connection): at most ``rate`` events per
second, bursts of one second. Pure bookkeeping: the caller supplies the time."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Buckets:
    rate: float
    max_names: int = 100_000  # bound on memory; the longest-known name goes first
    _state: dict[str, tuple[float, float]] = field(default_factory=dict)  # name -> (tokens, at)

    def take(self, name: str, now: float) -> float:
        """Take one token for ``name``: 0 when it had one, else the seconds until it will."""
        tokens, at = self._state.get(name, (self.rate, now))
        tokens = min(self.rate, tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            if name not in self._state and len(self._state) >= self.max_names:
                self._state.pop(next(iter(self._state)))
            self._state[name] = (tokens - 1.0, now)
            return 0.0
        self._state[name] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def drop(self, name: str) -> None:
        """Forget ``name`` (a closed connection): it starts with a full bucket if it comes back."""
        self._state.pop(name, None)
