"""Appending audit events: each gets the next dense sequence number, inside the caller's transaction.

A transaction-scoped advisory lock serialises appends, so sequence numbers are dense and the order of the
log is the order of commits; the lock is released at COMMIT or ROLLBACK, and a rolled-back append leaves
no gap. Keep appends as the last statement before COMMIT: the lock is held until then.
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


async def append_events(conn: asyncpg.Connection, events: Sequence[AuditEvent]) -> list[AppendedLeaf]:
    """Append `events`, in order, to the log in the current transaction with one statement; their indexes and
    leaf hashes. For a duty that records many things at once: the sequencer's lock is taken once, by the last
    statement before COMMIT, so the acceptances waiting for it wait for one insert, not one per event."""
    if not events:
        return []
    leaves = [event.leaf() for event in events]
    digests = [leaf_hash(leaf) for leaf in leaves]
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _SEQUENCER_LOCK_KEY)
    first = await conn.fetchval(
        """
        WITH next AS (SELECT coalesce(max(seq) + 1, 0) AS seq FROM audit_events),
        added AS (
            INSERT INTO audit_events (seq, event_type, outcome, actor, message_id, recorded_at, leaf, leaf_hash)
            SELECT next.seq + e.position - 1, e.event_type, e.outcome, e.actor, e.message_id, e.recorded_at, e.leaf,
                   e.leaf_hash
            FROM next, unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::timestamptz[], $6::bytea[],
                              $7::bytea[]) WITH ORDINALITY
                 AS e(event_type, outcome, actor, message_id, recorded_at, leaf, leaf_hash, position)
            RETURNING seq
        )
        SELECT min(seq) FROM added
        """,
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
