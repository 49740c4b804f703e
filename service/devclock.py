"""A clock the demo controls: development only (`handover demo` with `HANDOVER_DEV_IDP=1`), never in production.

The demo plays a year of network history through the real intake, so the hub must accept a message as of the
moment it was sent in that history: its acceptance time, deadlines, the IPT received date and the freshness
check all read this clock. Two ways to move it, both held by the process that built the hub (nothing on the
network can choose a time):

- a **ticket** (`ticket(moment)`), a single-use random token the demo sends in the `X-Handover-Demo-Clock`
  header; `middleware` redeems it and the clock reads that moment for the rest of that one request, so requests
  of many simulated moments can be in flight at once. An unknown or reused token is ignored (the request runs on
  the clock's own time and a back-dated message is then refused as stale).
- **`advance(moment)`**: the time every other reader sees (background duties: the safety net, the relay's
  dead-letter sweep, the staff pages), after which the duties registered with `add_duty` run once at that moment,
  as their timers would have fired. `release()` goes back to real time.

`service.app.build_app` accepts this clock only when `Settings.dev_idp` is on, and installs the middleware only
for it: a hub on the ordinary clock has no way to read the header.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from service.clock import Clock, utc_now

HEADER = "X-Handover-Demo-Clock"
Duty = Callable[[], Awaitable[int]]


class DemoClockNotAllowed(ValueError):  # noqa: N818 - read as "the demo clock is not allowed here"
    """A demo clock was offered to a hub that is not in development mode."""


class DemoClock:
    """`clock()` is the moment of the current request's ticket, else the moment set by `advance`, else real time."""

    def __init__(self, real: Clock = utc_now) -> None:
        self._real = real
        self._held: datetime | None = None
        self._tickets: dict[str, datetime] = {}
        self._request: ContextVar[datetime | None] = ContextVar("demo_clock_request", default=None)
        self._duties: list[Duty] = []

    def __call__(self) -> datetime:
        moment = self._request.get()
        if moment is not None:
            return moment
        return self._held if self._held is not None else self._real()

    def ticket(self, moment: datetime) -> str:
        """A single-use token that makes one request run at `moment` (timezone-aware)."""
        if moment.tzinfo is None:
            raise ValueError("a demo clock moment must be timezone-aware")
        token = secrets.token_urlsafe(16)
        self._tickets[token] = moment
        return token

    def redeem(self, token: str) -> datetime | None:
        return self._tickets.pop(token, None)

    @contextmanager
    def at(self, moment: datetime) -> Iterator[None]:
        """Within this block (this task and what it starts), the clock reads `moment`."""
        reset = self._request.set(moment)
        try:
            yield
        finally:
            self._request.reset(reset)

    def add_duty(self, duty: Duty) -> None:
        """A time-driven duty of the hub (returns how much it did) to run whenever the clock is advanced."""
        self._duties.append(duty)

    async def advance(self, moment: datetime) -> int:
        """Every reader without a ticket now sees `moment`; the duties run at it. Returns the sum they report."""
        if moment.tzinfo is None:
            raise ValueError("a demo clock moment must be timezone-aware")
        self._held = moment
        done = 0
        for duty in self._duties:
            done += await duty()
        return done

    def release(self) -> None:
        """Back to real time for every reader (tickets not yet redeemed are dropped)."""
        self._held = None
        self._tickets.clear()


def middleware(clock: DemoClock) -> Middleware:
    """Runs a request holding a valid ticket at the ticket's moment."""

    @web.middleware
    async def demo_clock(request: web.Request, handler: Handler) -> web.StreamResponse:
        token = request.headers.get(HEADER)
        moment = clock.redeem(token) if token else None
        if moment is None:
            return await handler(request)
        with clock.at(moment):
            return await handler(request)

    return demo_clock
