"""Background audit log verifications started from the audit page: one row per run, its progress while it runs
and its result after (so it survives reloads and restarts). At most one run is unfinished at a time (a unique
partial index); a run whose heartbeat stopped (its process died) is closed as abandoned by the next start.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg


@dataclass(frozen=True)
class VerifyRun:
    id: UUID
    started_by: str
    started_at: datetime
    heartbeat_at: datetime
    finished_at: datetime | None
    total: int
    checked: int
    outcome: str | None  # None while running; passed | failed | abandoned
    tree_size: int | None
    root_hash: bytes | None
    checkpoints: int | None
    divergences: list[dict[str, Any]]


_COLUMNS = (
    "id, started_by, started_at, heartbeat_at, finished_at, total, checked, outcome, tree_size, root_hash,"
    " checkpoints, divergences"
)


def _run(r: asyncpg.Record) -> VerifyRun:
    return VerifyRun(
        r["id"],
        r["started_by"],
        r["started_at"],
        r["heartbeat_at"],
        r["finished_at"],
        int(r["total"]),
        int(r["checked"]),
        r["outcome"],
        r["tree_size"],
        None if r["root_hash"] is None else bytes(r["root_hash"]),
        r["checkpoints"],
        json.loads(r["divergences"]),
    )


async def abandon_stale(conn: asyncpg.Connection, *, heartbeat_before: datetime, now: datetime) -> int:
    """Close unfinished runs whose last heartbeat is older than `heartbeat_before` (their process is gone)."""
    result = await conn.execute(
        "UPDATE audit_verify_runs SET finished_at = $2, outcome = 'abandoned'"
        " WHERE finished_at IS NULL AND heartbeat_at < $1",
        heartbeat_before,
        now,
    )
    return int(result.split()[-1])


async def insert_run(conn: asyncpg.Connection, run_id: UUID, started_by: str, now: datetime, total: int) -> bool:
    """Start a run; False (nothing written) if another run is unfinished."""
    inserted = await conn.fetchval(
        """
        INSERT INTO audit_verify_runs (id, started_by, started_at, heartbeat_at, total)
        VALUES ($1, $2, $3, $3, $4)
        ON CONFLICT DO NOTHING RETURNING true
        """,
        run_id,
        started_by,
        now,
        total,
    )
    return bool(inserted)


async def record_progress(conn: asyncpg.Connection, run_id: UUID, checked: int, now: datetime) -> None:
    await conn.execute(
        "UPDATE audit_verify_runs SET checked = $2, heartbeat_at = $3 WHERE id = $1 AND finished_at IS NULL",
        run_id,
        checked,
        now,
    )


async def finish_run(
    conn: asyncpg.Connection,
    run_id: UUID,
    *,
    now: datetime,
    outcome: str,
    checked: int,
    tree_size: int | None,
    root_hash: bytes | None,
    checkpoints: int | None,
    divergences: list[dict[str, Any]],
) -> None:
    await conn.execute(
        """
        UPDATE audit_verify_runs
        SET finished_at = $2, heartbeat_at = $2, outcome = $3, checked = $4, tree_size = $5, root_hash = $6,
            checkpoints = $7, divergences = $8::jsonb
        WHERE id = $1 AND finished_at IS NULL
        """,
        run_id,
        now,
        outcome,
        checked,
        tree_size,
        root_hash,
        checkpoints,
        json.dumps(divergences),
    )


async def get_run(conn: asyncpg.Connection, run_id: UUID) -> VerifyRun | None:
    record = await conn.fetchrow(f"SELECT {_COLUMNS} FROM audit_verify_runs WHERE id = $1", run_id)  # noqa: S608
    return None if record is None else _run(record)


async def latest_runs(conn: asyncpg.Connection, limit: int) -> list[VerifyRun]:
    records = await conn.fetch(
        f"SELECT {_COLUMNS} FROM audit_verify_runs ORDER BY started_at DESC LIMIT $1",  # noqa: S608
        limit,
    )
    return [_run(r) for r in records]
