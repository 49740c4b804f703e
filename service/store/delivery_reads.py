"""What the deliveries page reads beside the operational figures (store/ops_figures.py: queue depths, oldest
undelivered, dead letters per recipient): each push recipient's recorded circuit state, and the dead letters
with their non-delivery reports and re-queues."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg


@dataclass(frozen=True)
class CircuitRecord:
    recipient_ods: str
    failures: int
    open_until: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class DeadLetterRow:
    delivery_id: int
    message_id: UUID
    recipient_ods: str
    sender_ods: str
    event: str
    attempts: int
    last_error: str | None
    last_status: int | None
    created_at: datetime
    dead_lettered_at: datetime
    report_message_id: UUID | None
    report_reason: str | None
    report_at: datetime | None
    requeued_by: str | None
    requeued_at: datetime | None


async def circuits(conn: asyncpg.Connection) -> list[CircuitRecord]:
    rows = await conn.fetch(
        "SELECT recipient_ods, failures, open_until, updated_at FROM push_circuits ORDER BY recipient_ods"
    )
    return [CircuitRecord(r["recipient_ods"], r["failures"], r["open_until"], r["updated_at"]) for r in rows]


_DEAD_LETTERS = """
SELECT d.id, d.message_id, d.recipient_ods, m.sender_ods, m.event, d.attempts, d.last_error, d.last_status,
       d.created_at, d.dead_lettered_at, n.report_message_id, n.reason AS report_reason, n.created_at AS report_at,
       r.requested_by, r.requested_at
FROM deliveries d
JOIN messages m ON m.id = d.message_id
LEFT JOIN non_delivery_reports n ON n.delivery_id = d.id
LEFT JOIN redeliveries r ON r.delivery_id = d.id
"""


def _dead_letter(r: asyncpg.Record) -> DeadLetterRow:
    return DeadLetterRow(
        r["id"],
        r["message_id"],
        r["recipient_ods"],
        r["sender_ods"],
        r["event"],
        r["attempts"],
        r["last_error"],
        r["last_status"],
        r["created_at"],
        r["dead_lettered_at"],
        r["report_message_id"],
        r["report_reason"],
        r["report_at"],
        r["requested_by"],
        r["requested_at"],
    )


async def dead_letters(conn: asyncpg.Connection, limit: int) -> list[DeadLetterRow]:
    """The newest `limit` dead letters, newest first."""
    rows = await conn.fetch(
        _DEAD_LETTERS + " WHERE d.state = 'dead_letter' ORDER BY d.dead_lettered_at DESC, d.id LIMIT $1", limit
    )
    return [_dead_letter(r) for r in rows]


async def dead_letter_for_message(conn: asyncpg.Connection, message_id: UUID) -> list[DeadLetterRow]:
    """The message's dead-lettered deliveries (one per recipient at most)."""
    rows = await conn.fetch(_DEAD_LETTERS + " WHERE d.state = 'dead_letter' AND d.message_id = $1", message_id)
    return [_dead_letter(r) for r in rows]
