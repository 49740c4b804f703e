"""`verify now` from the audit page: the full offline verification (`log_check.LogCheck`: every leaf hash,
every checkpoint's signature and root, dense indexes) run in the background against the hub's own database,
with its progress and result stored (service/store/verify_runs.py) so any page load, in any hub process, can
show them. One run at a time across all processes; a run whose process died is closed as abandoned.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from uuid import UUID

import asyncpg

from service.auditlog.log_check import LogCheck, VerifyReport
from service.auditlog.verify_cli import BATCH
from service.clock import Clock, utc_now
from service.identity.registry import Registry
from service.store import audit_reads, db, verify_runs
from service.store import checkpoints as checkpoint_store

log = logging.getLogger("handover.auditlog")
STALE_AFTER = timedelta(minutes=2)  # a running run's heartbeat is at least every batch (10,000 entries)
MAX_DIVERGENCES_KEPT = 50


class AlreadyRunningError(RuntimeError):
    """Another verification is still running."""


def report_divergences(report: VerifyReport) -> list[dict[str, object]]:
    """The report's divergences (first first) as stored: kinds, indexes and hashes only."""
    ordered = sorted(report.divergences, key=lambda d: (d.index, d.kind))[:MAX_DIVERGENCES_KEPT]
    return [{"kind": d.kind, "index": d.index, "text": d.describe()} for d in ordered]


class VerificationRunner:
    """Starts and runs verifications. Arguments: the pool, the registry now in service (a callable, so reloads
    are followed), and a clock."""

    def __init__(self, pool: asyncpg.Pool, registry: Callable[[], Registry], clock: Clock = utc_now) -> None:
        self._pool = pool
        self._registry = registry
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, started_by: str) -> UUID:
        """Record a new run and start it in the background; AlreadyRunningError if one is unfinished."""
        run_id = uuid.uuid4()
        now = self._clock()
        async with db.transaction(self._pool) as conn:
            await verify_runs.abandon_stale(conn, heartbeat_before=now - STALE_AFTER, now=now)
            total = await audit_reads.log_size(conn)
            if not await verify_runs.insert_run(conn, run_id, started_by, now, total):
                raise AlreadyRunningError
        task = asyncio.create_task(self.run(run_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return run_id

    async def run(self, run_id: UUID) -> None:
        """Verify the whole log as one consistent snapshot, recording progress after every batch."""
        checked = 0
        try:
            async with db.connection(self._pool) as conn, conn.transaction(isolation="repeatable_read", readonly=True):
                check = LogCheck(self._registry(), await checkpoint_store.all_checkpoints(conn))
                async for rows in audit_reads.leaf_batches(conn, batch=BATCH):
                    await asyncio.to_thread(check.consume, rows)
                    checked += len(rows)
                    async with db.connection(self._pool) as progress:
                        await verify_runs.record_progress(progress, run_id, checked, self._clock())
            report = check.finish()
        except asyncio.CancelledError:
            await self._finish(run_id, "abandoned", checked, None)
            raise
        except Exception:  # a background task: record the failure rather than lose it
            log.exception("audit verification run failed")
            await self._finish(run_id, "abandoned", checked, None)
            return
        await self._finish(run_id, "passed" if report.ok else "failed", checked, report)

    async def _finish(self, run_id: UUID, outcome: str, checked: int, report: VerifyReport | None) -> None:
        async with db.connection(self._pool) as conn:
            await verify_runs.finish_run(
                conn,
                run_id,
                now=self._clock(),
                outcome=outcome,
                checked=checked,
                tree_size=None if report is None else report.tree_size,
                root_hash=None if report is None else report.root,
                checkpoints=None if report is None else report.checkpoints,
                divergences=[] if report is None else report_divergences(report),
            )

    async def close(self) -> None:
        """Stop runs in progress (each is recorded as abandoned)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
