"""Pull delivery: a participant's inbox of messages not yet delivered, the encrypted payload for the domain layer
to open, and acknowledgement (which marks the delivery done unless push or a dead letter got there first)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from service.store.messages import StoredPayload, stored_payload


@dataclass(frozen=True)
class InboxItem:
    message_id: UUID
    sender_ods: str
    event: str
    bundle_identifier: str
    payload_sha256: str
    accepted_at: datetime
    fetched_at: datetime | None


@dataclass(frozen=True)
class Acknowledgement:
    message_id: UUID
    delivered_at: datetime
    newly_delivered: bool


async def list_inbox(conn: asyncpg.Connection, recipient_ods: str, *, limit: int) -> list[InboxItem]:
    """Messages for `recipient_ods` still pending delivery, oldest first."""
    rows = await conn.fetch(
        """
        SELECT m.id, m.sender_ods, m.event, m.bundle_identifier, m.payload_sha256, m.accepted_at, d.fetched_at
        FROM deliveries d JOIN messages m ON m.id = d.message_id
        WHERE d.recipient_ods = $1 AND d.state = 'pending'
        ORDER BY d.created_at, d.id
        LIMIT $2
        """,
        recipient_ods,
        limit,
    )
    return [
        InboxItem(
            r["id"],
            r["sender_ods"],
            r["event"],
            r["bundle_identifier"],
            r["payload_sha256"],
            r["accepted_at"],
            r["fetched_at"],
        )
        for r in rows
    ]


async def fetch_payload(conn: asyncpg.Connection, recipient_ods: str, message_id: UUID) -> StoredPayload | None:
    """The encrypted payload of a message addressed to `recipient_ods` (with its wrapped data key, for the domain
    layer to open); None if there is no such message. `encrypted` is None once the payload has been shredded.

    The first fetch is remembered (`fetched_at`); fetching does not deliver: acknowledging does.
    """
    row = await conn.fetchrow(
        """
        WITH fetched AS (
            UPDATE deliveries SET fetched_at = coalesce(fetched_at, now())
            WHERE message_id = $2 AND recipient_ods = $1
            RETURNING message_id
        )
        SELECT m.id, m.sender_ods, m.recipient_ods, m.payload_ciphertext, m.payload_nonce, m.payload_aad_version,
               k.kek_id, k.wrapped_key
        FROM fetched f JOIN messages m ON m.id = f.message_id LEFT JOIN data_keys k ON k.message_id = m.id
        """,
        recipient_ods,
        message_id,
    )
    return None if row is None else stored_payload(row)


async def acknowledge(conn: asyncpg.Connection, recipient_ods: str, message_id: UUID) -> Acknowledgement | None:
    """Mark the message delivered by pull. Repeating it is harmless; None if there is no such message."""
    row = await conn.fetchrow(
        """
        UPDATE deliveries SET state = 'delivered', channel = 'mailbox', delivered_at = now()
        WHERE message_id = $2 AND recipient_ods = $1 AND state = 'pending'
        RETURNING delivered_at
        """,
        recipient_ods,
        message_id,
    )
    if row is not None:
        return Acknowledgement(message_id, row["delivered_at"], newly_delivered=True)
    row = await conn.fetchrow(
        "SELECT delivered_at FROM deliveries WHERE message_id = $2 AND recipient_ods = $1 AND state = 'delivered'",
        recipient_ods,
        message_id,
    )
    if row is None:
        return None
    return Acknowledgement(message_id, row["delivered_at"], newly_delivered=False)


async def count_undelivered(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM deliveries WHERE state = 'pending'"))
