"""Accepted messages and their idempotency keys: the rows written by the acceptance transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg


@dataclass(frozen=True)
class NewMessage:
    """Everything stored about an accepted message; `payload` is the original signed bytes."""

    id: UUID
    sender_ods: str
    recipient_ods: str
    event: str
    bundle_identifier: str
    message_header_id: str | None
    payload_sha256: str
    payload: bytes
    request_id: UUID
    correlation_id: UUID | None
    accepted_at: datetime


@dataclass(frozen=True)
class IdempotencyRecord:
    payload_sha256: str
    message_id: UUID
    receipt: bytes


async def claim_idempotency_key(
    conn: asyncpg.Connection, sender_ods: str, request_id: UUID, payload_sha256: str, message_id: UUID
) -> bool:
    """Claim (sender, X-Request-ID) for a new message. False if it was already used by a committed message.

    A concurrent claim of the same key waits here until the other transaction ends, so at most one wins.
    """
    claimed = await conn.fetchval(
        """
        INSERT INTO idempotency_keys (sender_ods, request_id, payload_sha256, message_id)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (sender_ods, request_id) DO NOTHING
        RETURNING true
        """,
        sender_ods,
        request_id,
        payload_sha256,
        message_id,
    )
    return bool(claimed)


async def find_idempotency_record(
    conn: asyncpg.Connection, sender_ods: str, request_id: UUID
) -> IdempotencyRecord | None:
    row = await conn.fetchrow(
        "SELECT payload_sha256, message_id, receipt FROM idempotency_keys WHERE sender_ods = $1 AND request_id = $2",
        sender_ods,
        request_id,
    )
    if row is None or row["receipt"] is None:
        return None
    return IdempotencyRecord(row["payload_sha256"], row["message_id"], bytes(row["receipt"]))


async def insert_message(conn: asyncpg.Connection, message: NewMessage) -> bool:
    """Store the message and its delivery job. False if this sender already sent this Bundle.identifier."""
    inserted = await conn.fetchval(
        """
        INSERT INTO messages (id, sender_ods, recipient_ods, event, bundle_identifier, message_header_id,
                              payload_sha256, payload, request_id, correlation_id, accepted_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        ON CONFLICT ON CONSTRAINT messages_sender_bundle_identifier_key DO NOTHING
        RETURNING true
        """,
        message.id,
        message.sender_ods,
        message.recipient_ods,
        message.event,
        message.bundle_identifier,
        message.message_header_id,
        message.payload_sha256,
        message.payload,
        message.request_id,
        message.correlation_id,
        message.accepted_at,
    )
    if not inserted:
        return False
    await conn.execute(
        "INSERT INTO deliveries (message_id, recipient_ods, created_at, next_attempt_at) VALUES ($1, $2, $3, $3)",
        message.id,
        message.recipient_ods,
        message.accepted_at,
    )
    return True


async def store_receipt(conn: asyncpg.Connection, sender_ods: str, request_id: UUID, receipt: bytes) -> None:
    await conn.execute(
        "UPDATE idempotency_keys SET receipt = $3 WHERE sender_ods = $1 AND request_id = $2",
        sender_ods,
        request_id,
        receipt,
    )


async def count_messages(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM messages"))


async def fetch_payload_for_governance(conn: asyncpg.Connection, message_id: UUID) -> bytes | None:
    """The stored bytes of any message, for an audited governance read; None if there is no such message."""
    row = await conn.fetchrow("SELECT payload FROM messages WHERE id = $1", message_id)
    return None if row is None else bytes(row["payload"])
