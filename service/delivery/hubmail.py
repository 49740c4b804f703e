"""The hub's own messages (a safety-net or clock alert, a non-delivery report): `HubMail` is the one sender of them,
holding the vault that seals them, the hub key that signs them and the event system they are coded in; built once
by the hub (service/hub.py) and handed to the relay, the dead letters, the safety net and the clock watch. Posting
stores the message encrypted like any accepted message, with its delivery job, in the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from service.crypto.envelope import PayloadIdentity
from service.crypto.vault import PayloadVault
from service.identity.hubkey import HubKey, hub_jwk
from service.identity.signing import payload_sha256
from service.store import episodes, messages

HUB = "hub"


@dataclass(frozen=True)
class HubMail:
    """The one sender of the hub's own messages: `vault` seals them, `key` (the hub's signing key, followed across
    rotations) signs them, `event_system` is the URL of the Handover event code system they are coded in."""

    vault: PayloadVault
    key: HubKey
    event_system: str

    def signing_jwk(self) -> Mapping[str, Any]:
        """The hub's private JWK to sign with now (the active one after a rotation)."""
        return hub_jwk(self.key)

    async def post(
        self,
        conn: asyncpg.Connection,
        *,
        message_id: UUID,
        recipient_ods: str,
        bundle: dict[str, Any],
        raw: bytes,
        at: datetime,
        request_id: UUID | None = None,
    ) -> None:
        """Store `raw` (the signed bytes of `bundle`) for `recipient_ods`; pull or push then delivers it."""
        sealed = await self.vault.seal(raw, PayloadIdentity(message_id, HUB, recipient_ods))
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

    async def post_episode_alert(
        self,
        conn: asyncpg.Connection,
        *,
        episode_id: UUID,
        kind: str,
        message_id: UUID,
        recipient_ods: str,
        bundle: dict[str, Any],
        raw: bytes,
        at: datetime,
    ) -> None:
        """Post an alert about an episode and put it on that episode's timeline as `alert:<kind>`."""
        await self.post(conn, message_id=message_id, recipient_ods=recipient_ods, bundle=bundle, raw=raw, at=at)
        await episodes.add_message(
            conn,
            episode_id=episode_id,
            message_id=message_id,
            kind=f"alert:{kind}",
            sender_ods=HUB,
            recipient_ods=recipient_ods,
            at=at,
            changed=False,
        )
