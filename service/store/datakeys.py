"""Wrapped data keys: which KEKs are in use, re-wrapping under a new KEK, and crypto-shredding at the end of
retention (the data key and ciphertext go; the message's metadata row stays) of payloads their recipient read."""

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
    read_as: str = "delivered"  # how the recipient had it: "delivered" or (business) "acknowledged"


# A payload counts as read when a delivery of it succeeded or its recipient acknowledged it (HAZ-12): retention
# never shreds a payload nobody read, e.g. one dead-lettered while the recipient's system was down.
_READ = """(EXISTS (SELECT 1 FROM deliveries r WHERE r.message_id = m.id AND r.state = 'delivered')
            OR EXISTS (SELECT 1 FROM episode_messages a WHERE a.message_id = m.id AND a.acknowledged_at IS NOT NULL))"""
_FINISHED = """NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id AND d.state = 'pending')
              AND (SELECT max(coalesce(d.delivered_at, d.dead_lettered_at)) FROM deliveries d
                   WHERE d.message_id = m.id) < $3"""


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
    """Crypto-shred up to `limit` payloads that were read (delivered or acknowledged) and whose deliveries all
    ended (delivered or dead-lettered) before `finished_before`: delete the data key and the ciphertext, stamp
    `payload_shredded_at`. Only messages of type `event`, or (`event` None) of any type but those in `other_than`.
    Returns what was shredded."""
    rows = await conn.fetch(
        f"""
        WITH doomed AS (
            SELECT m.id FROM messages m
            WHERE m.payload_shredded_at IS NULL
              AND ($1::text IS NULL AND NOT (m.event = ANY($2::text[])) OR m.event = $1)
              AND {_FINISHED}
              AND {_READ}
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
        RETURNING m.id, m.event, m.sender_ods, m.recipient_ods,
            CASE WHEN EXISTS (SELECT 1 FROM deliveries r WHERE r.message_id = m.id AND r.state = 'delivered')
                 THEN 'delivered' ELSE 'acknowledged' END AS read_as
        """,  # noqa: S608 - fixed SQL fragments, values bound
        event,
        list(other_than),
        finished_before,
        now,
        limit,
    )
    return [ShreddedPayload(r["id"], r["event"], r["sender_ods"], r["recipient_ods"], r["read_as"]) for r in rows]


async def keep_unread_payloads(
    conn: asyncpg.Connection,
    *,
    event: str | None,
    other_than: Sequence[str] = (),
    finished_before: datetime,
    now: datetime,
    limit: int,
) -> list[ShreddedPayload]:
    """Payloads past their retention that nobody read (every delivery dead-lettered, never acknowledged), not yet
    noted: stamp `payload_kept_unread_at` and return them, so each is audited once as kept rather than shredded."""
    rows = await conn.fetch(
        f"""
        UPDATE messages m SET payload_kept_unread_at = $4
        WHERE m.id IN (
            SELECT m.id FROM messages m
            WHERE m.payload_shredded_at IS NULL AND m.payload_kept_unread_at IS NULL
              AND ($1::text IS NULL AND NOT (m.event = ANY($2::text[])) OR m.event = $1)
              AND {_FINISHED}
              AND NOT {_READ}
            ORDER BY m.accepted_at, m.id
            LIMIT $5
            FOR UPDATE OF m SKIP LOCKED
        )
        RETURNING m.id, m.event, m.sender_ods, m.recipient_ods
        """,  # noqa: S608 - fixed SQL fragments, values bound
        event,
        list(other_than),
        finished_before,
        now,
        limit,
    )
    return [ShreddedPayload(r["id"], r["event"], r["sender_ods"], r["recipient_ods"], "unread") for r in rows]
