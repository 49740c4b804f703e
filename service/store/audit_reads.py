"""Reading the audit log's leaves back: its size, a range of entries, and a stream of all of them.

Appending stays in `store/audit.py`. Nothing here checks hashes: the readers (`auditlog.tree`, the offline
verifier, the export) do, so a tampered row is reported by them rather than silently skipped here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg


@dataclass(frozen=True)
class StoredLeaf:
    """One row of `audit_events` as stored: its index (`seq`), leaf bytes and stored leaf hash."""

    index: int
    leaf: bytes
    leaf_hash: bytes


async def log_size(conn: asyncpg.Connection) -> int:
    """One more than the highest index: the log's size if, as it must be, no index is missing."""
    return int(await conn.fetchval("SELECT coalesce(max(seq) + 1, 0) FROM audit_events"))


async def read_leaves(conn: asyncpg.Connection, start: int, end: int) -> list[StoredLeaf]:
    """The rows with start <= index < end, in index order (fewer if some are missing)."""
    rows = await conn.fetch(
        "SELECT seq, leaf, leaf_hash FROM audit_events WHERE seq >= $1 AND seq < $2 ORDER BY seq", start, end
    )
    return [StoredLeaf(int(r["seq"]), bytes(r["leaf"]), bytes(r["leaf_hash"])) for r in rows]


async def read_leaf_hashes(conn: asyncpg.Connection, start: int, end: int) -> list[bytes]:
    """The stored leaf hashes of the rows with start <= index < end, in index order (fewer if some are missing)."""
    rows = await conn.fetch("SELECT leaf_hash FROM audit_events WHERE seq >= $1 AND seq < $2 ORDER BY seq", start, end)
    return [bytes(r[0]) for r in rows]


async def stream_leaves(conn: asyncpg.Connection, *, prefetch: int = 10_000) -> AsyncIterator[StoredLeaf]:
    """Every row in index order, fetched `prefetch` at a time. Must run inside a transaction (a cursor);
    open it REPEATABLE READ to read one consistent snapshot together with the checkpoints."""
    cursor = conn.cursor("SELECT seq, leaf, leaf_hash FROM audit_events ORDER BY seq", prefetch=prefetch)
    async for row in cursor:
        yield StoredLeaf(row[0], row[1], row[2])


async def leaf_batches(conn: asyncpg.Connection, *, batch: int = 10_000) -> AsyncIterator[list[asyncpg.Record]]:
    """Every row as records ``(seq, leaf, leaf_hash)`` in index order, `batch` at a time: the fast path for
    reading a whole log. Must run inside a transaction (a cursor)."""
    cursor = await conn.cursor("SELECT seq, leaf, leaf_hash FROM audit_events ORDER BY seq")
    while rows := await cursor.fetch(batch):
        yield rows


@dataclass(frozen=True)
class MessageEntry:
    """One audit entry about a message: its index, type and outcome, when, and its leaf bytes."""

    index: int
    message_id: UUID
    event_type: str
    outcome: str
    recorded_at: datetime
    leaf: bytes


async def entries_for_messages(conn: asyncpg.Connection, message_ids: list[UUID]) -> list[MessageEntry]:
    """Every entry naming one of `message_ids`, in log order."""
    rows = await conn.fetch(
        "SELECT seq, event_type, outcome, recorded_at, leaf, message_id FROM audit_events"
        " WHERE message_id = ANY($1::uuid[]) ORDER BY seq",
        message_ids,
    )
    return [
        MessageEntry(int(r["seq"]), r["message_id"], r["event_type"], r["outcome"], r["recorded_at"], bytes(r["leaf"]))
        for r in rows
    ]
