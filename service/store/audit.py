"""Appending audit events: each gets the next dense sequence number, inside the caller's transaction.

A transaction-scoped advisory lock serialises appends, so sequence numbers are dense and the order of the
log is the order of commits; the lock is released at COMMIT or ROLLBACK, and a rolled-back append leaves
no gap. Keep appends as the last statement before COMMIT: the lock is held until then.
"""

from __future__ import annotations

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
    leaf = event.leaf()
    digest = leaf_hash(leaf)
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _SEQUENCER_LOCK_KEY)
    index = await conn.fetchval(
        """
        INSERT INTO audit_events (seq, event_type, outcome, actor, message_id, recorded_at, leaf, leaf_hash)
        SELECT coalesce(max(seq) + 1, 0), $1, $2, $3, $4, $5, $6, $7 FROM audit_events
        RETURNING seq
        """,
        event.type.value,
        event.outcome,
        event.actor,
        event.message_id,
        event.at,
        leaf,
        digest,
    )
    return AppendedLeaf(int(index), digest)


async def count_events(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM audit_events"))
