"""Appending audit events: each gets the next dense sequence number, inside the caller's transaction.

A transaction-scoped advisory lock serialises appends, so sequence numbers are dense and the order of the
log is the order of commits; the lock is released at COMMIT or ROLLBACK, and a rolled-back append leaves
no gap. Keep appends as the last statement before COMMIT: the lock is held until then. Taking the lock and
inserting is one call of the database function `audit_append` (migration 0012): one round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from service.auditlog.events import AuditEvent, leaf_hash

_SEQUENCER_LOCK_KEY = 0x6175646974  # "audit"


@dataclass(frozen=True)
class AppendedLeaf:
    index: int
    leaf_hash: bytes


async def append_event(conn: asyncpg.Connection, event: AuditEvent) -> AppendedLeaf:
    """Append `event` to the log in the current transaction; returns its index and leaf hash."""
    (appended,) = await append_events(conn, [event])
    return appended


async def append_events(conn: asyncpg.Connection, events: Sequence[AuditEvent]) -> list[AppendedLeaf]:
    """Append `events`, in order, to the log in the current transaction, in one round trip (the function
    `audit_append`, migration 0012, takes the sequencer's lock and then inserts); their indexes and leaf hashes.
    The lock is held from here until COMMIT, so every acceptance waiting for it waits for what the caller does
    after this call: keep it short, and make this the last write before COMMIT."""
    if not events:
        return []
    leaves = [event.leaf() for event in events]
    digests = [leaf_hash(leaf) for leaf in leaves]
    first = await conn.fetchval(
        "SELECT audit_append($1, $2, $3, $4, $5, $6, $7, $8)",
        _SEQUENCER_LOCK_KEY,
        [event.type.value for event in events],
        [event.outcome for event in events],
        [event.actor for event in events],
        [event.message_id for event in events],
        [event.at for event in events],
        leaves,
        digests,
    )
    return [AppendedLeaf(int(first) + offset, digest) for offset, digest in enumerate(digests)]


async def count_events(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM audit_events"))
