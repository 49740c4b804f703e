"""Accepted messages, their encrypted payloads and data keys, and their idempotency keys: the rows written by the
acceptance transaction.

A payload is stored only encrypted (`EncryptedPayload`: AES-256-GCM ciphertext and nonce in ``messages``, the
wrapped data key in ``data_keys``); this module never sees a key-encryption key or a plaintext payload, except the
legacy plaintext of rows written before migration 0003, which it hands out once to be sealed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from service.terminology import is_ods_code


@dataclass(frozen=True)
class EncryptedPayload:
    """A payload as stored: ciphertext ‖ tag, nonce, AAD version, and its data key wrapped under KEK `kek_id`."""

    ciphertext: bytes
    nonce: bytes
    aad_version: int
    kek_id: str
    wrapped_key: bytes


@dataclass(frozen=True)
class StoredPayload:
    """The encrypted payload of one message with the identity it is bound to; `encrypted` is None once the
    payload has been shredded at the end of its retention."""

    message_id: UUID
    sender_ods: str
    recipient_ods: str
    encrypted: EncryptedPayload | None


@dataclass(frozen=True)
class NewMessage:
    """Everything stored about an accepted message; `sealed` is the original signed bytes, encrypted."""

    id: UUID
    sender_ods: str
    recipient_ods: str
    event: str
    bundle_identifier: str
    message_header_id: str | None
    payload_sha256: str
    sealed: EncryptedPayload
    request_id: UUID
    correlation_id: UUID | None
    accepted_at: datetime


@dataclass(frozen=True)
class IdempotencyRecord:
    payload_sha256: str
    message_id: UUID
    receipt: bytes


@dataclass(frozen=True)
class LegacyPayload:
    """A payload stored in plaintext before migration 0003, to be sealed and replaced."""

    message_id: UUID
    sender_ods: str
    recipient_ods: str
    plaintext: bytes


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


# The message, its data key and its delivery job, in one statement: the key and the job are written only if the
# message was. Parameters $1-$15 are `_message_arguments`; {condition} may make the message depend on a CTE before.
_MESSAGE_CTES = """
    message AS (
        INSERT INTO messages (id, sender_ods, recipient_ods, event, bundle_identifier, message_header_id,
                              payload_sha256, payload_ciphertext, payload_nonce, payload_aad_version,
                              request_id, correlation_id, accepted_at)
        SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 {condition}
        ON CONFLICT ON CONSTRAINT messages_sender_bundle_identifier_key DO NOTHING
        RETURNING id, recipient_ods, accepted_at
    ), data_key AS (
        INSERT INTO data_keys (message_id, kek_id, wrapped_key, created_at)
        SELECT id, $14, $15, accepted_at FROM message
    ), delivery AS (
        INSERT INTO deliveries (message_id, recipient_ods, created_at, next_attempt_at)
        SELECT id, recipient_ods, accepted_at, accepted_at FROM message
    )
"""
_INSERT_MESSAGE = "WITH" + _MESSAGE_CTES.format(condition="") + "SELECT count(*) = 1 FROM message"  # noqa: S608
_CLAIM = """
    WITH token AS (
        INSERT INTO used_token_ids (issuer, jti, expires_at) SELECT $16, $17, $18 WHERE $16::text IS NOT NULL
        ON CONFLICT (issuer, jti) DO NOTHING
        RETURNING true
    ), claim AS (
        INSERT INTO idempotency_keys (sender_ods, request_id, payload_sha256, message_id)
        SELECT $2, $11, $7, $1 WHERE $16::text IS NULL OR EXISTS (SELECT 1 FROM token)
        ON CONFLICT (sender_ods, request_id) DO NOTHING
        RETURNING true
    ),"""
_CLAIMED = """
    SELECT $16::text IS NULL OR EXISTS (SELECT 1 FROM token) AS fresh, EXISTS (SELECT 1 FROM claim) AS claimed,
           EXISTS (SELECT 1 FROM message) AS inserted
"""
_CLAIM_AND_INSERT = _CLAIM + _MESSAGE_CTES.format(condition="WHERE EXISTS (SELECT 1 FROM claim)") + _CLAIMED


def _message_arguments(message: NewMessage) -> tuple[Any, ...]:
    sealed = message.sealed
    return (
        message.id,
        message.sender_ods,
        message.recipient_ods,
        message.event,
        message.bundle_identifier,
        message.message_header_id,
        message.payload_sha256,
        sealed.ciphertext,
        sealed.nonce,
        sealed.aad_version,
        message.request_id,
        message.correlation_id,
        message.accepted_at,
        sealed.kek_id,
        sealed.wrapped_key,
    )


async def insert_message(conn: asyncpg.Connection, message: NewMessage) -> bool:
    """Store the message, its encrypted payload, its data key and its delivery job. False (nothing stored) if
    this sender already sent this Bundle.identifier."""
    return bool(await conn.fetchval(_INSERT_MESSAGE, *_message_arguments(message)))


@dataclass(frozen=True)
class UsedToken:
    """A bearer token's id, kept until the token expires so it is never accepted twice."""

    issuer: str
    jti: str
    expires_at: datetime


@dataclass(frozen=True)
class Claim:
    fresh: bool
    """The bearer token had not been used (True when there is none)."""
    claimed: bool
    """(sender, X-Request-ID) was free: False means the request was made before (a replay)."""
    inserted: bool
    """The message was stored: False, with `claimed`, means this sender already sent its Bundle.identifier."""


async def claim_and_insert_message(conn: asyncpg.Connection, message: NewMessage, *, token: UsedToken | None) -> Claim:
    """An acceptance's writes before its episode and audit, in one statement (one round trip), each only if the one
    before succeeded: use up the bearer token's jti, claim (sender, X-Request-ID), store the message as
    `insert_message` does. Concurrent uses of one token, one key or one Bundle.identifier wait for each other
    and at most one wins, as they would one statement each."""
    record = await conn.fetchrow(
        _CLAIM_AND_INSERT,
        *_message_arguments(message),
        token.issuer if token else None,
        token.jti if token else None,
        token.expires_at if token else None,
    )
    return Claim(bool(record["fresh"]), bool(record["claimed"]), bool(record["inserted"]))


def store_receipt_statement(sender_ods: str, request_id: UUID, receipt: bytes) -> str:
    """The statement that keeps an acceptance's receipt for replays, as plain SQL for
    `EndableTransaction.commit_after`: the values are written as literals, each checked to be what it claims (an
    ODS code, a UUID, bytes as hex), never quoted from input."""
    if not is_ods_code(sender_ods) or not isinstance(request_id, UUID):
        raise ValueError("store_receipt_statement: not an ODS code and a UUID")
    # Literals checked above: an ODS code ([A-Z0-9]), a UUID, hex digits.
    where = f"WHERE sender_ods = '{sender_ods}' AND request_id = '{request_id}'::uuid"
    return f"UPDATE idempotency_keys SET receipt = '\\x{receipt.hex()}'::bytea {where}"  # noqa: S608


async def count_messages(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM messages"))


async def legacy_plaintext_payloads(conn: asyncpg.Connection, *, limit: int) -> list[LegacyPayload]:
    """Rows still holding a pre-0003 plaintext payload, locked for this transaction (others skip them)."""
    rows = await conn.fetch(
        """
        SELECT id, sender_ods, recipient_ods, payload FROM messages
        WHERE payload IS NOT NULL
        ORDER BY accepted_at, id
        LIMIT $1
        FOR UPDATE SKIP LOCKED
        """,
        limit,
    )
    return [LegacyPayload(r["id"], r["sender_ods"], r["recipient_ods"], bytes(r["payload"])) for r in rows]


async def replace_legacy_payload(conn: asyncpg.Connection, message_id: UUID, sealed: EncryptedPayload) -> None:
    """Swap a legacy plaintext payload for its encrypted form (and data key), in the caller's transaction."""
    await conn.execute(
        """
        UPDATE messages SET payload = NULL, payload_ciphertext = $2, payload_nonce = $3, payload_aad_version = $4
        WHERE id = $1
        """,
        message_id,
        sealed.ciphertext,
        sealed.nonce,
        sealed.aad_version,
    )
    await conn.execute(
        "INSERT INTO data_keys (message_id, kek_id, wrapped_key) VALUES ($1, $2, $3)",
        message_id,
        sealed.kek_id,
        sealed.wrapped_key,
    )


def stored_payload(row: asyncpg.Record) -> StoredPayload:
    """A `StoredPayload` from a row with id, sender_ods, recipient_ods, payload_ciphertext, payload_nonce,
    payload_aad_version, kek_id and wrapped_key (the last two from ``LEFT JOIN data_keys``)."""
    encrypted = None
    if row["payload_ciphertext"] is not None and row["wrapped_key"] is not None:
        encrypted = EncryptedPayload(
            bytes(row["payload_ciphertext"]),
            bytes(row["payload_nonce"]),
            int(row["payload_aad_version"]),
            str(row["kek_id"]),
            bytes(row["wrapped_key"]),
        )
    return StoredPayload(row["id"], row["sender_ods"], row["recipient_ods"], encrypted)


async def fetch_payload_for_governance(conn: asyncpg.Connection, message_id: UUID) -> StoredPayload | None:
    """The encrypted payload of any message (with its wrapped data key), for an audited governance read that
    the domain layer opens with the vault; None if there is no such message."""
    row = await conn.fetchrow(
        """
        SELECT m.id, m.sender_ods, m.recipient_ods, m.payload_ciphertext, m.payload_nonce, m.payload_aad_version,
               k.kek_id, k.wrapped_key
        FROM messages m LEFT JOIN data_keys k ON k.message_id = m.id
        WHERE m.id = $1
        """,
        message_id,
    )
    return None if row is None else stored_payload(row)
