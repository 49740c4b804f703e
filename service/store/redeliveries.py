"""Putting a dead letter back in its queue, once: the `redeliveries` row (keyed by delivery) records who asked
and what the delivery was before, and the delivery starts afresh as pending (attempts 0, a new delivery window
from now). Both statements run in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg


@dataclass(frozen=True)
class Requeued:
    delivery_id: int
    message_id: UUID
    recipient_ods: str
    previous_error: str | None


async def requeue_dead_letter(
    conn: asyncpg.Connection, delivery_id: int, *, requested_by: str, now: datetime
) -> Requeued | None:
    """Re-queue the dead letter `delivery_id`; None (nothing changed) if it is not a dead letter or was already
    re-queued once."""
    row = await conn.fetchrow(
        """
        WITH dead AS (
            SELECT id, message_id, recipient_ods, last_error, last_status, attempts, created_at, dead_lettered_at
            FROM deliveries WHERE id = $1 AND state = 'dead_letter' FOR UPDATE
        ), recorded AS (
            INSERT INTO redeliveries (delivery_id, requested_by, requested_at, previous_error, previous_status,
                                      previous_attempts, previous_created_at, previous_dead_lettered_at)
            SELECT id, $2, $3, last_error, last_status, attempts, created_at, dead_lettered_at FROM dead
            ON CONFLICT (delivery_id) DO NOTHING
            RETURNING delivery_id
        )
        UPDATE deliveries d
        SET state = 'pending', dead_lettered_at = NULL, attempts = 0, next_attempt_at = $3, created_at = $3,
            lease_until = '-infinity', lease_token = NULL, last_error = NULL, last_status = NULL
        FROM recorded r, dead
        WHERE d.id = r.delivery_id
        RETURNING d.id, d.message_id, d.recipient_ods, dead.last_error AS previous_error
        """,
        delivery_id,
        requested_by,
        now,
    )
    if row is None:
        return None
    return Requeued(row["id"], row["message_id"], row["recipient_ods"], row["previous_error"])


async def has_report(conn: asyncpg.Connection, delivery_id: int) -> bool:
    """Whether the delivery already has its non-delivery report (a re-queued dead letter that dies again)."""
    return bool(await conn.fetchval("SELECT true FROM non_delivery_reports WHERE delivery_id = $1", delivery_id))
