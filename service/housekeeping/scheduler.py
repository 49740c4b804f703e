"""Runs the housekeeping duties on their schedule, safely beside any number of other hub processes and replicas.

For each duty, a process first takes the duty's advisory lock without waiting (busy: another process is
running it now, so this one skips it), then claims the run in `housekeeping_duties` only if the duty is due
there (so N replicas run a duty about once per interval between them), runs it (bounded batches, each its own
transaction), and records what it removed or why it failed. A failure or a store outage is logged, counted
and retried at the next interval; it never stops the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import asyncpg

from service.background import run_forever
from service.clock import Clock, utc_now
from service.errors import HandoverError
from service.housekeeping.duties import Duty
from service.store import db
from service.store import housekeeping as store

log = logging.getLogger("handover.housekeeping")


class Outcome(Enum):
    RAN = "ran"
    FAILED = "failed"
    BUSY = "busy"  # another process holds the duty's lock
    NOT_DUE = "not-due"  # another process ran it within its interval


@dataclass(frozen=True)
class DutyRun:
    duty: str
    outcome: Outcome
    removed: int = 0


class Housekeeping:
    """The duties and the pool they run on; `run` until `stopping` is set, or `run_due` for one pass."""

    def __init__(self, pool: asyncpg.Pool, duties: Sequence[Duty], *, clock: Clock = utc_now) -> None:
        if len({duty.name for duty in duties}) != len(duties):
            raise ValueError("two housekeeping duties share a name")
        self._pool = pool
        self.duties = list(duties)
        self._clock = clock  # scheduling is on the real clock whatever the domain's clock says

    async def run(self, stopping: asyncio.Event) -> None:
        """A pass over the duties every shortest interval until `stopping` is set; a pass that fails outside a
        duty (its lock or its run record: a store fault) is logged, counted and retried (service/background.py)."""
        tick = min(duty.every for duty in self.duties).total_seconds()
        await run_forever("housekeeping", lambda: self.run_due(stopping), interval=tick, until=stopping)

    async def run_due(self, stopping: asyncio.Event | None = None) -> list[DutyRun]:
        """Run every duty that is due and not running elsewhere; what happened to each."""
        stopping = stopping or asyncio.Event()
        return [await self.run_duty(duty, stopping) for duty in self.duties if not stopping.is_set()]

    async def run_duty(self, duty: Duty, stopping: asyncio.Event) -> DutyRun:
        try:
            async with db.connection(self._pool) as conn:
                if not await store.try_lock_duty(conn, duty.name):
                    return DutyRun(duty.name, Outcome.BUSY)
                try:
                    return await self._run_locked(conn, duty, stopping)
                finally:
                    await store.unlock_duty(conn, duty.name)
        except HandoverError:
            log.warning("housekeeping skipped: store unavailable", extra={"code": duty.name})
            return DutyRun(duty.name, Outcome.FAILED)

    async def _run_locked(self, conn: asyncpg.Connection, duty: Duty, stopping: asyncio.Event) -> DutyRun:
        if not await store.claim_due_run(conn, duty.name, now=self._clock(), every=duty.every):
            return DutyRun(duty.name, Outcome.NOT_DUE)
        removed, error = 0, None
        try:
            removed = await duty.run(conn, stopping)
        except Exception as exc:  # a fault is recorded on /metrics and retried next time
            if isinstance(exc, (HandoverError, *db.CONNECTION_ERRORS)):
                raise  # the store is gone: nothing can be recorded; the run is retried when the duty is next due
            error = type(exc).__name__
            log.exception("housekeeping duty failed", extra={"code": duty.name})
        await store.record_run(conn, duty.name, finished_at=self._clock(), removed=removed, error=error)
        if removed:
            log.info("housekeeping removed rows", extra={"code": duty.name, "count": removed})
        return DutyRun(duty.name, Outcome.FAILED if error else Outcome.RAN, removed)
