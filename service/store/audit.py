"""Appending audit events: each gets the next dense sequence number, inside the caller's transaction.

A transaction-scoped advisory lock serialises appends, so sequence numbers are dense and the order of the
log is the order of commits; the lock is released at COMMIT or ROLLBACK, and a rolled-back append leaves
no gap. Keep appends as the last statement before COMMIT: the lock is held until then. Taking the lock and
inserting is one call of the database function `audit_append` (migration 0012): one round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

_SEQUENCER_LOCK_KEY = 0x6175646974  # "audit"


@dataclass(frozen=True)
class AppendedLeaf:
    index: int
    leaf_hash: bytes


@dataclass(frozen=True)
class LeafRow:
    """One audit log entry as stored: the searchable columns, the leaf bytes and their RFC 9162 leaf hash. The
    audit log (service/auditlog/appending.py) makes these from its events; the store only writes bytes."""

    type: str
    outcome: str
    actor: str
    message_id: UUID | None
    at: datetime
    leaf: bytes
    leaf_hash: bytes


async def append_rows(conn: asyncpg.Connection, rows: Sequence[LeafRow]) -> list[AppendedLeaf]:
    """Append `rows`, in order, to the log in the current transaction, in one round trip (the function
    `audit_append`, migration 0012, takes the sequencer's lock and then inserts); their indexes and leaf hashes.
    The lock is held from here until COMMIT, so every acceptance waiting for it waits for what the caller does
    after this call: keep it short, and make this the last write before COMMIT."""
    if not rows:
        return []
    first = await conn.fetchval(
        "SELECT audit_append($1, $2, $3, $4, $5, $6, $7, $8)",
        _SEQUENCER_LOCK_KEY,
        [row.type for row in rows],
        [row.outcome for row in rows],
        [row.actor for row in rows],
        [row.message_id for row in rows],
        [row.at for row in rows],
        [row.leaf for row in rows],
        [row.leaf_hash for row in rows],
    )
    return [AppendedLeaf(int(first) + offset, row.leaf_hash) for offset, row in enumerate(rows)]


async def count_events(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM audit_events"))
