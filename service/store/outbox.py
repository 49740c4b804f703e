"""The outbox: delivery jobs (``deliveries`` rows) as the push relay sees them. Every statement the relay needs
is here: lease due jobs, mark delivered, reschedule, release, dead-letter, and record the non-delivery report.

Each state change checks ``state = 'pending'`` in SQL, so push, pull acknowledgement and dead-lettering can race
safely: the first to change the row wins and the others change nothing. Rescheduling, releasing and
dead-lettering a leased job also need its current `lease_token`, so a relay whose lease has expired (and been
taken over) cannot undo the new holder's work. Times come from the caller's clock, so tests can move time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from service.store.messages import StoredPayload, stored_payload


@dataclass(frozen=True)
class LeasedJob:
    """A delivery job leased to one relay until `lease_until`, with what is needed to push it."""

    delivery_id: int
    lease_token: UUID
    lease_until: datetime
    attempts: int
    created_at: datetime
    recipient_ods: str
    sender_ods: str
    message_id: UUID
    event: str
    bundle_identifier: str
    correlation_id: UUID | None
    payload: StoredPayload


@dataclass(frozen=True)
class DeadLetter:
    """A delivery just dead-lettered, with what its non-delivery report needs."""

    delivery_id: int
    message_id: UUID
    recipient_ods: str
    sender_ods: str
    event: str
    bundle_identifier: str
    message_header_id: str | None
    attempts: int
    created_at: datetime


async def lease_due_jobs(
    conn: asyncpg.Connection,
    recipient_ods: str,
    *,
    now: datetime,
    lease_until: datetime,
    lease_token: UUID,
    limit: int,
) -> list[LeasedJob]:
    """Lease up to `limit` of `recipient_ods`'s jobs that are due and not leased, oldest due first; each
    attempt is counted now. Rows another relay is leasing at this instant are skipped, not waited for."""
    rows = await conn.fetch(
        """
        WITH leased AS (
            UPDATE deliveries
            SET lease_until = $3, lease_token = $4, attempts = attempts + 1
            WHERE id IN (
                SELECT id FROM deliveries
                WHERE state = 'pending' AND recipient_ods = $1 AND next_attempt_at <= $2 AND lease_until < $2
                ORDER BY next_attempt_at, id
                LIMIT $5
                FOR UPDATE SKIP LOCKED
            )
            RETURNING id, message_id, attempts, created_at, lease_until, lease_token
        )
        SELECT l.id AS delivery_id, l.attempts, l.created_at, l.lease_until, l.lease_token,
               m.id, m.sender_ods, m.recipient_ods, m.event, m.bundle_identifier, m.correlation_id,
               m.payload_ciphertext, m.payload_nonce, m.payload_aad_version, k.kek_id, k.wrapped_key
        FROM leased l JOIN messages m ON m.id = l.message_id LEFT JOIN data_keys k ON k.message_id = m.id
        ORDER BY l.id
        """,
        recipient_ods,
        now,
        lease_until,
        lease_token,
        limit,
    )
    return [
        LeasedJob(
            delivery_id=r["delivery_id"],
            lease_token=r["lease_token"],
            lease_until=r["lease_until"],
            attempts=r["attempts"],
            created_at=r["created_at"],
            recipient_ods=r["recipient_ods"],
            sender_ods=r["sender_ods"],
            message_id=r["id"],
            event=r["event"],
            bundle_identifier=r["bundle_identifier"],
            correlation_id=r["correlation_id"],
            payload=stored_payload(r),
        )
        for r in rows
    ]


async def mark_delivered(conn: asyncpg.Connection, delivery_id: int, *, now: datetime, status: int | None) -> bool:
    """Delivered by push. False if it was no longer pending (pulled, or delivered by another relay, meanwhile)."""
    done = await conn.fetchval(
        """
        UPDATE deliveries
        SET state = 'delivered', channel = 'push', delivered_at = $2, last_status = $3, last_error = NULL,
            lease_until = '-infinity', lease_token = NULL
        WHERE id = $1 AND state = 'pending'
        RETURNING true
        """,
        delivery_id,
        now,
        status,
    )
    return bool(done)


async def reschedule(
    conn: asyncpg.Connection,
    delivery_id: int,
    lease_token: UUID,
    *,
    next_attempt_at: datetime,
    error: str | None,
    status: int | None,
) -> bool:
    """Try again at `next_attempt_at` and give up the lease. False if this lease is no longer current."""
    done = await conn.fetchval(
        """
        UPDATE deliveries
        SET next_attempt_at = $3, last_error = $4, last_status = $5, lease_until = '-infinity', lease_token = NULL
        WHERE id = $1 AND lease_token = $2 AND state = 'pending'
        RETURNING true
        """,
        delivery_id,
        lease_token,
        next_attempt_at,
        error,
        status,
    )
    return bool(done)


async def release(conn: asyncpg.Connection, delivery_id: int, lease_token: UUID) -> bool:
    """Give a leased job back untouched: no longer leased, and its attempt count as it was before the lease."""
    done = await conn.fetchval(
        """
        UPDATE deliveries
        SET lease_until = '-infinity', lease_token = NULL, attempts = greatest(attempts - 1, 0)
        WHERE id = $1 AND lease_token = $2 AND state = 'pending'
        RETURNING true
        """,
        delivery_id,
        lease_token,
    )
    return bool(done)


async def mark_dead_letter(
    conn: asyncpg.Connection,
    delivery_id: int,
    *,
    lease_token: UUID | None,
    now: datetime,
    error: str,
    status: int | None,
    created_before: datetime | None = None,
) -> DeadLetter | None:
    """Dead-letter a pending delivery: the holder of `lease_token`, or (token None) nobody may hold a live lease
    on it. With `created_before`, only if it was created before then. None if nothing changed."""
    row = await conn.fetchrow(
        """
        UPDATE deliveries d
        SET state = 'dead_letter', dead_lettered_at = $3, last_error = $4, last_status = $5,
            lease_until = '-infinity', lease_token = NULL
        FROM messages m
        WHERE d.id = $1 AND d.state = 'pending' AND m.id = d.message_id
          AND (($2::uuid IS NULL AND d.lease_until < $3) OR d.lease_token = $2)
          AND ($6::timestamptz IS NULL OR d.created_at < $6)
        RETURNING d.id, d.message_id, d.recipient_ods, d.attempts, d.created_at,
                  m.sender_ods, m.event, m.bundle_identifier, m.message_header_id
        """,
        delivery_id,
        lease_token,
        now,
        error,
        status,
        created_before,
    )
    if row is None:
        return None
    return DeadLetter(
        delivery_id=row["id"],
        message_id=row["message_id"],
        recipient_ods=row["recipient_ods"],
        sender_ods=row["sender_ods"],
        event=row["event"],
        bundle_identifier=row["bundle_identifier"],
        message_header_id=row["message_header_id"],
        attempts=row["attempts"],
        created_at=row["created_at"],
    )


async def expired_delivery_ids(
    conn: asyncpg.Connection, *, created_before: datetime, now: datetime, limit: int
) -> list[int]:
    """Pending deliveries created before `created_before` and not leased now (any recipient, push or pull)."""
    rows = await conn.fetch(
        """
        SELECT id FROM deliveries
        WHERE state = 'pending' AND created_at < $1 AND lease_until < $2
        ORDER BY created_at, id
        LIMIT $3
        """,
        created_before,
        now,
        limit,
    )
    return [r["id"] for r in rows]


async def record_non_delivery_report(
    conn: asyncpg.Connection, delivery_id: int, report_message_id: UUID, *, reason: str, now: datetime
) -> None:
    """Link a dead letter to its report. The primary key allows exactly one per delivery: a second raises
    UniqueViolationError, which rolls back the caller's whole transaction."""
    await conn.execute(
        """
        INSERT INTO non_delivery_reports (delivery_id, report_message_id, reason, created_at)
        VALUES ($1, $2, $3, $4)
        """,
        delivery_id,
        report_message_id,
        reason,
        now,
    )


async def count_by_state(conn: asyncpg.Connection) -> dict[str, int]:
    """Deliveries by state (pending, delivered, dead_letter), for metrics and checks."""
    rows = await conn.fetch("SELECT state, count(*) AS n FROM deliveries GROUP BY state")
    return {r["state"]: int(r["n"]) for r in rows}
