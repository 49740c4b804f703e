"""Pull delivery as a business action: list, fetch and acknowledge, each audited where it delivers."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from service.auditlog.events import AuditEvent, EventType
from service.clock import Clock, utc_now
from service.store import audit, db
from service.store import mailbox as mailbox_store
from service.store.mailbox import Acknowledgement, InboxItem


class Mailboxes:
    """Every participant's inbox over one pool."""

    def __init__(self, pool: asyncpg.Pool, clock: Clock = utc_now) -> None:
        self._pool = pool
        self._clock = clock

    async def pending(self, ods: str, *, limit: int = 100) -> list[InboxItem]:
        async with db.connection(self._pool) as conn:
            return await mailbox_store.list_inbox(conn, ods, limit=limit)

    async def fetch(self, ods: str, message_id: UUID) -> bytes | None:
        """The original signed bytes, if the message is addressed to `ods`."""
        async with db.transaction(self._pool) as conn:
            return await mailbox_store.fetch_payload(conn, ods, message_id)

    async def acknowledge(self, ods: str, message_id: UUID) -> Acknowledgement | None:
        """Mark delivered by pull; the first acknowledgement is audited, repeats are harmless."""
        async with db.transaction(self._pool) as conn:
            ack = await mailbox_store.acknowledge(conn, ods, message_id)
            if ack is not None and ack.newly_delivered:
                await audit.append_event(
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
