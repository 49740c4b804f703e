"""Pull delivery as a business action: list, fetch (the payload decrypted here, never in the store) and
acknowledge, each audited where it delivers. Acknowledging marks the delivery done only if it is still pending,
so a message already pushed (or dead-lettered) is not delivered a second time."""

from __future__ import annotations

import logging
from uuid import UUID

import asyncpg

from service.auditlog import appending
from service.auditlog.events import AuditEvent, EventType
from service.clock import Clock, utc_now
from service.crypto.envelope import PayloadUnreadableError
from service.crypto.vault import PayloadShreddedError, PayloadVault
from service.errors import Code, HandoverError
from service.store import db
from service.store import mailbox as mailbox_store
from service.store.mailbox import Acknowledgement, InboxItem

log = logging.getLogger("handover.mailbox")


class Mailboxes:
    """Every participant's inbox over one pool; payloads are opened with `vault`."""

    def __init__(self, pool: asyncpg.Pool, vault: PayloadVault, clock: Clock = utc_now) -> None:
        self._pool = pool
        self._vault = vault
        self._clock = clock

    @property
    def vault(self) -> PayloadVault:
        """The vault payloads are opened with (also for other audited reads, e.g. governance)."""
        return self._vault

    async def pending(self, ods: str, *, limit: int = 100) -> list[InboxItem]:
        async with db.connection(self._pool) as conn:
            return await mailbox_store.list_inbox(conn, ods, limit=limit)

    async def fetch(self, ods: str, message_id: UUID) -> bytes | None:
        """The original signed bytes, if the message is addressed to `ods` and its payload is still kept (None
        otherwise). HandoverError: UNAVAILABLE if the KEK is, INTERNAL if the stored copy fails authentication."""
        async with db.transaction(self._pool) as conn:
            stored = await mailbox_store.fetch_payload(conn, ods, message_id)
        if stored is None:
            return None
        try:
            return await self._vault.open(stored)
        except PayloadShreddedError:
            return None
        except PayloadUnreadableError:
            log.error("stored payload failed authentication", extra={"message_id": str(message_id)})
            raise HandoverError(Code.INTERNAL, "The hub's stored copy of this message cannot be read") from None

    async def acknowledge(self, ods: str, message_id: UUID) -> Acknowledgement | None:
        """Mark delivered by pull; the first acknowledgement is audited, repeats are harmless."""
        async with db.transaction(self._pool) as conn:
            ack = await mailbox_store.acknowledge(conn, ods, message_id)
            if ack is not None and ack.newly_delivered:
                await appending.append_event(
                    conn,
                    AuditEvent(
                        type=EventType.MESSAGE_DELIVERED,
                        outcome="delivered",
                        actor=ods,
                        at=self._clock(),
                        message_id=message_id,
                        details={"channel": "mailbox", "recipient": ods},
                    ),
                )
            return ack

    async def undelivered_count(self) -> int:
        async with db.connection(self._pool) as conn:
            return await mailbox_store.count_undelivered(conn)
