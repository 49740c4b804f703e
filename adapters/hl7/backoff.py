"""When to try something again that failed: bounded exponential backoff per key (a mailbox message, the EPR, the
hub), so a fault that persists is retried at a falling rate instead of at poll speed for ever."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """After the n-th failure in a row a key waits `base * 2**(n-1)` seconds, at most `cap`; a success clears it."""

    base: float
    cap: float
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, int] = field(default_factory=dict)
    _next: dict[str, float] = field(default_factory=dict)

    def due(self, key: str) -> bool:
        """Whether `key` may be tried now."""
        return self.clock() >= self._next.get(key, 0.0)

    def failed(self, key: str) -> int:
        """Record a failure of `key`; returns how many in a row."""
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        self._next[key] = self.clock() + self.delay(count)
        return count

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)

    def delay(self, count: int) -> float:
        """The wait after `count` failures in a row."""
        return float(min(self.cap, self.base * 2 ** min(count - 1, 32))) if count > 0 else 0.0

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)
        self._next.pop(key, None)

    def keep_only(self, keys: Iterable[str]) -> None:
        """Forget every key not in `keys` (messages that left the mailbox), so the state stays bounded."""
        wanted = set(keys)
        for key in [k for k in self._failures if k not in wanted]:
            self.succeeded(key)
