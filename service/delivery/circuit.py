"""A circuit breaker for one recipient: after repeated failures stop sending to it for a while, then let a single
probe through; a success closes it. With per-recipient queues this keeps a dead endpoint from tying up work and
connections; it never affects any other recipient. Pure logic over an injected clock time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass
class CircuitBreaker:
    """`failure_threshold` consecutive failures open it for `cooldown`, doubling on each failed probe up to
    `max_cooldown`; a recipient's Retry-After opens it until then."""

    failure_threshold: int = 5
    cooldown: timedelta = timedelta(seconds=5)
    max_cooldown: timedelta = timedelta(minutes=5)
    failures: int = 0
    open_until: datetime | None = None
    _trips: int = 0

    def state(self, now: datetime) -> CircuitState:
        if self.open_until is None:
            return CircuitState.CLOSED
        return CircuitState.OPEN if now < self.open_until else CircuitState.HALF_OPEN

    def allowance(self, now: datetime, concurrency: int) -> int:
        """How many pushes may be in flight now: all of `concurrency` when closed, one probe when half-open."""
        state = self.state(now)
        if state is CircuitState.OPEN:
            return 0
        return 1 if state is CircuitState.HALF_OPEN else concurrency

    def record_success(self) -> None:
        self.failures, self._trips, self.open_until = 0, 0, None

    def record_failure(self, now: datetime, *, retry_after: timedelta | None = None) -> None:
        self.failures += 1
        if retry_after is not None and retry_after > timedelta(0):
            self._open(now, retry_after)
        elif self.open_until is not None or self.failures >= self.failure_threshold:
            self._trips += 1
            self._open(now, min(self.max_cooldown, self.cooldown * 2 ** min(self._trips - 1, 20)))

    def _open(self, now: datetime, for_how_long: timedelta) -> None:
        until = now + for_how_long
        self.open_until = until if self.open_until is None or until > self.open_until else self.open_until
