"""Wrapped data keys: which KEKs are in use, re-wrapping under a new KEK, and crypto-shredding at the end of
retention (the data key and ciphertext go; the message's metadata row stays)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg


@dataclass(frozen=True)
class WrappedDataKey:
    message_id: UUID
    kek_id: str
    wrapped_key: bytes


@dataclass(frozen=True)
class ShreddedPayload:
    message_id: UUID
    event: str
    sender_ods: str
    recipient_ods: str


async def kek_ids_in_use(conn: asyncpg.Connection) -> list[str]:
    """Every KEK id some stored data key is wrapped under."""
    return [r["kek_id"] for r in await conn.fetch("SELECT DISTINCT kek_id FROM data_keys ORDER BY kek_id")]


async def keys_not_under(conn: asyncpg.Connection, kek_id: str, *, limit: int) -> list[WrappedDataKey]:
    """Up to `limit` data keys wrapped under any KEK but `kek_id`, locked for this transaction (others skip them)."""
    rows = await conn.fetch(
        """
        SELECT message_id, kek_id, wrapped_key FROM data_keys
        WHERE kek_id <> $1
        ORDER BY message_id
        LIMIT $2
        FOR UPDATE SKIP LOCKED
        """,
        kek_id,
        limit,
    )
    return [WrappedDataKey(r["message_id"], r["kek_id"], bytes(r["wrapped_key"])) for r in rows]


async def replace_wrapped_key(
    conn: asyncpg.Connection, message_id: UUID, kek_id: str, wrapped_key: bytes, *, now: datetime
) -> None:
    await conn.execute(
        "UPDATE data_keys SET kek_id = $2, wrapped_key = $3, rewrapped_at = $4 WHERE message_id = $1",
        message_id,
        kek_id,
        wrapped_key,
        now,
    )


async def count_keys_under(conn: asyncpg.Connection, kek_ids: Sequence[str]) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM data_keys WHERE kek_id = ANY($1::text[])", list(kek_ids)))


async def shred_finished_payloads(
    conn: asyncpg.Connection,
    *,
    event: str | None,
    other_than: Sequence[str] = (),
    finished_before: datetime,
    now: datetime,
    limit: int,
) -> list[ShreddedPayload]:
    """Crypto-shred up to `limit` payloads whose deliveries all ended (delivered or dead-lettered) before
    `finished_before`: delete the data key and the ciphertext, stamp `payload_shredded_at`. Only messages of
    type `event`, or (`event` None) of any type but those in `other_than`. Returns what was shredded."""
    rows = await conn.fetch(
        """
        WITH doomed AS (
            SELECT m.id FROM messages m
            WHERE m.payload_shredded_at IS NULL
              AND ($1::text IS NULL AND NOT (m.event = ANY($2::text[])) OR m.event = $1)
              AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id AND d.state = 'pending')
              AND (SELECT max(coalesce(d.delivered_at, d.dead_lettered_at)) FROM deliveries d
                   WHERE d.message_id = m.id) < $3
            ORDER BY m.accepted_at, m.id
            LIMIT $5
            FOR UPDATE OF m SKIP LOCKED
        ), gone AS (
            DELETE FROM data_keys WHERE message_id IN (SELECT id FROM doomed) RETURNING message_id
        )
        UPDATE messages m
        SET payload = NULL, payload_ciphertext = NULL, payload_nonce = NULL, payload_aad_version = NULL,
            payload_shredded_at = $4
        WHERE m.id IN (SELECT id FROM doomed)
        RETURNING m.id, m.event, m.sender_ods, m.recipient_ods
        """,
        event,
        list(other_than),
        finished_before,
        now,
        limit,
    )
    return [ShreddedPayload(r["id"], r["event"], r["sender_ods"], r["recipient_ods"]) for r in rows]
