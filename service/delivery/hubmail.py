"""Posting a message the hub itself wrote (a safety-net alert, a non-delivery report) to a participant: stored
encrypted like any accepted message, with its delivery job, in the caller's transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from service.crypto.envelope import PayloadIdentity
from service.crypto.vault import PayloadVault
from service.identity.signing import payload_sha256
from service.store import messages

HUB = "hub"


async def post_hub_message(
    conn: asyncpg.Connection,
    vault: PayloadVault,
    *,
    message_id: UUID,
    recipient_ods: str,
    bundle: dict[str, Any],
    raw: bytes,
    at: datetime,
    request_id: UUID | None = None,
) -> None:
    """Store `raw` (the signed bytes of `bundle`) for `recipient_ods`; pull or push then delivers it."""
    sealed = await vault.seal(raw, PayloadIdentity(message_id, HUB, recipient_ods))
    await messages.insert_message(
        conn,
        messages.NewMessage(
            id=message_id,
            sender_ods=HUB,
            recipient_ods=recipient_ods,
            event=bundle["entry"][0]["resource"]["eventCoding"]["code"],
            bundle_identifier=bundle["identifier"]["value"],
            message_header_id=bundle["entry"][0]["resource"]["id"],
            payload_sha256=payload_sha256(bundle),
            sealed=sealed,
            request_id=request_id or uuid.uuid4(),
            correlation_id=None,
            accepted_at=at,
        ),
    )
