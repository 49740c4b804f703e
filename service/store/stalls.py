"""A bound on how long one piece of database work may take on the intake path, and what repeated stalls do.

A primary can stop answering without failing: the classic case is a half-dead primary (Patroni gone, its
postmaster still up and read-write) whose synchronous standby has been promoted elsewhere, so every COMMIT waits
for a replica that will never confirm. Without a bound each request waits for asyncpg's command timeout (30 s)
and the callers pile up. With one, the work is abandoned after `seconds`: the caller answers 503 with
Retry-After at once, and after `resets_after` stalls in a row every pooled connection is dropped, so the next
requests connect afresh and find wherever the primary is now.

The connection is abandoned by closing its socket, never by a query cancel (asyncpg's own timeouts send one):
a cancel ends a COMMIT's wait for synchronous replication and leaves the transaction committed on the stalled
primary alone, where a retry of the same request could read it and receipt a message the new primary never
had. A closed socket leaves that backend waiting, its transaction invisible, until the old primary is fenced
(and rewound) or its standby returns. PostgreSQL's statement_timeout is no help either way: it is switched off
before the commit, so it never ends that wait (tests/ha/test_patroni_failover.py shows both).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import asyncpg

log = logging.getLogger("handover.store")


@dataclass
class StallGuard:
    """Shared by every use of one pool that must answer quickly; counts stalls for /metrics. One timer serves every
    watch at once (armed for the oldest's deadline, then the next's), not one armed and cancelled per use."""

    seconds: float
    resets_after: int = 3
    stalls: int = 0
    resets: int = 0
    _in_a_row: int = 0
    _watching: dict[Watch, None] = field(default_factory=dict, init=False, repr=False)  # oldest first: deadline order
    _timer: asyncio.TimerHandle | None = field(default=None, init=False, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False, repr=False)

    def watch(self, conn: asyncpg.Connection) -> Watch:
        """Start the clock on `conn`: once `seconds` pass before `Watch.done`, its socket is closed."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a guard outlives an event loop (tests): what the last one watched is gone
            self._loop, self._watching, self._timer = loop, {}, None
        watch = Watch(conn, loop.time() + self.seconds, self._watching)
        self._watching[watch] = None
        if self._timer is None:
            self._timer = loop.call_at(watch.deadline, self._expire_due)
        return watch

    def _expire_due(self) -> None:
        """Close the socket of every watch past its deadline (each in its own callback, as each had its own timer);
        then wait for the next one's."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            return
        self._timer = None
        now = loop.time()
        while self._watching:
            watch = next(iter(self._watching))
            if watch.deadline > now:
                self._timer = loop.call_at(watch.deadline, self._expire_due)
                return
            del self._watching[watch]
            loop.call_soon(watch.expire)

    async def stalled(self, pool: asyncpg.Pool) -> None:
        self.stalls += 1
        self._in_a_row += 1
        log.warning(
            "store stalled: no answer within %s s; the connection was dropped and the request answered 503",
            f"{self.seconds:g}",
            extra={"count": self._in_a_row},
        )
        if self._in_a_row >= self.resets_after:
            self._in_a_row = 0
            self.resets += 1
            await pool.expire_connections()  # every pooled connection is replaced on its next acquire
            log.error(
                "store stalled %d times in a row: every pooled connection is dropped and the primary sought again;"
                " a primary that stalls but stays read-write must be fenced (docs/operations.md, High availability)",
                self.resets_after,
                extra={"count": self.resets},
            )

    def answered(self) -> None:
        self._in_a_row = 0


class Watch:
    """One guarded use of a connection: `expired` once its time ran out (at `deadline`, on the event loop's clock)
    and its socket was closed."""

    def __init__(self, conn: asyncpg.Connection, deadline: float, watching: dict[Watch, None]) -> None:
        self.conn = conn
        self.deadline = deadline
        self.expired = False
        self.finished = False
        self._watching = watching

    def expire(self) -> None:
        if self.finished:  # answered after all, before its turn came: the connection is someone else's now
            return
        self.expired = True
        self.conn.terminate()  # no cancel request: see the module docstring

    def done(self) -> None:
        self.finished = True
        self._watching.pop(self, None)
