"""How often one client may start a staff sign-in: a token bucket per client address (HANDOVER_UI_SIGN_IN_
STARTS_PER_MINUTE, default 20, as a burst refilled evenly over a minute), so nobody can write sign-in rows
without end. The buckets live in this process's memory and at most `max_clients` are kept (the least recently
seen forgotten first), so the limiter itself cannot be made to grow; the store's cap on sign-ins in flight
(`SessionStore.max_pending_sign_ins`) bounds the rows across all addresses and processes.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class SignInStartLimit:
    def __init__(
        self, per_minute: int, *, max_clients: int = 10_000, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_minute = per_minute
        self._max_clients = max_clients
        self._monotonic = monotonic
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)

    def allow(self, client: str) -> bool:
        """Whether `client` may start a sign-in now (and, if so, that start is counted)."""
        now = self._monotonic()
        tokens, at = self._buckets.pop(client, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - at) * self.per_minute / 60.0)
        allowed = tokens >= 1.0
        self._buckets[client] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)
        return allowed
