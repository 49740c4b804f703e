"""Governance staff reading a message's payload: only with a stated reason, and never without an audit event.

The read and its audit event commit together, so no payload leaves the hub unrecorded.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from service.auditlog.events import AuditEvent, EventType
from service.clock import Clock, utc_now
from service.crypto.vault import PayloadShreddedError, PayloadUnreadableError, PayloadVault
from service.errors import Code, HandoverError
from service.staff import StaffIdentity
from service.store import audit, db, messages

MIN_REASON, MAX_REASON = 10, 500


async def read_payload(
    pool: asyncpg.Pool,
    message_id: UUID,
    reader: StaffIdentity,
    reason: str,
    clock: Clock = utc_now,
    *,
    vault: PayloadVault,
) -> bytes:
    """The message's original bytes for `reader`, who must state why (10-500 characters)."""
    reason = reason.strip()
    if not MIN_REASON <= len(reason) <= MAX_REASON or any(ord(c) < 32 for c in reason):
        raise HandoverError(
            Code.BAD_HEADER,
            f"state why you need this payload in 'reason' ({MIN_REASON}-"
            f"{MAX_REASON} characters, one line); the reason is kept in the audit log",
        )
    async with db.transaction(pool) as conn:
        stored = await messages.fetch_payload_for_governance(conn, message_id)
        if stored is None:
            raise HandoverError(Code.NOT_FOUND, "No such message")
        try:
            payload = await vault.open(stored)  # KEK unavailable: 503, and no read is audited
        except PayloadShreddedError:
            raise HandoverError(Code.NOT_FOUND, "This payload was deleted at the end of its retention") from None
        except PayloadUnreadableError:
            raise HandoverError(Code.INTERNAL, "The hub's stored copy of this message cannot be read") from None
        await audit.append_event(
            conn,
            AuditEvent(
                EventType.PAYLOAD_READ,
                "read",
                reader.user,
                clock(),
                message_id=message_id,
                details={"reason": reason, "role": reader.role.value},
            ),
        )
    return payload
