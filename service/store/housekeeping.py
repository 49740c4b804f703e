"""Housekeeping's shared state: one advisory lock per duty (one process runs a duty at a time), the duty's
schedule and totals in `housekeeping_duties`, and the reads /metrics makes of them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

_LOCK_NAMESPACE = "handover.housekeeping:"


def duty_lock_key(duty: str) -> int:
    """A stable 64-bit advisory lock key for `duty` (the same in every process and release)."""
    digest = hashlib.sha256((_LOCK_NAMESPACE + duty).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def try_lock_duty(conn: asyncpg.Connection, duty: str) -> bool:
    """Take the duty's session advisory lock on `conn` if nobody holds it; False if another process does.
    (The pool's reset on release also drops it, and so does a lost connection: a crash never leaves it held.)"""
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", duty_lock_key(duty)))


async def unlock_duty(conn: asyncpg.Connection, duty: str) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1)", duty_lock_key(duty))


async def claim_due_run(conn: asyncpg.Connection, duty: str, *, now: datetime, every: timedelta) -> bool:
    """If `duty` is due (its next run is not after `now`), mark it started and due again `every` from now, and
    return True; False if another process ran it recently. Call while holding the duty's lock."""
    await conn.execute("INSERT INTO housekeeping_duties (duty) VALUES ($1) ON CONFLICT (duty) DO NOTHING", duty)
    claimed = await conn.fetchval(
        """
        UPDATE housekeeping_duties SET last_started_at = $2, next_run_at = $3
        WHERE duty = $1 AND next_run_at <= $2
        RETURNING true
        """,
        duty,
        now,
        now + every,
    )
    return bool(claimed)


async def record_run(
    conn: asyncpg.Connection, duty: str, *, finished_at: datetime, removed: int, error: str | None
) -> None:
    """The outcome of a run: rows removed (added to the total even when a later batch failed), success or the
    error's name."""
    await conn.execute(
        """
        UPDATE housekeeping_duties
        SET last_finished_at = $2,
            last_success_at = CASE WHEN $4::text IS NULL THEN $2 ELSE last_success_at END,
            last_ok = $4::text IS NULL, last_error = $4, last_removed = $3,
            removed_total = removed_total + $3, runs_total = runs_total + 1,
            failures_total = failures_total + CASE WHEN $4::text IS NULL THEN 0 ELSE 1 END
        WHERE duty = $1
        """,
        duty,
        finished_at,
        removed,
        error,
    )


@dataclass(frozen=True)
class DutyFigures:
    duty: str
    last_finished_at: datetime | None
    last_success_at: datetime | None
    last_ok: bool | None
    last_removed: int
    removed_total: int
    runs_total: int
    failures_total: int


async def read_duty_figures(conn: asyncpg.Connection) -> list[DutyFigures]:
    rows = await conn.fetch(
        "SELECT duty, last_finished_at, last_success_at, last_ok, last_removed, removed_total, runs_total,"
        " failures_total FROM housekeeping_duties ORDER BY duty"
    )
    return [
        DutyFigures(
            r["duty"],
            r["last_finished_at"],
            r["last_success_at"],
            r["last_ok"],
            int(r["last_removed"]),
            int(r["removed_total"]),
            int(r["runs_total"]),
            int(r["failures_total"]),
        )
        for r in rows
    ]
