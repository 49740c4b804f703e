"""Governance staff reading a message's payload: only with a stated reason, and never without an audit event.

The read and its audit event commit together, so no payload leaves the hub unrecorded.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from service.auditlog import appending
from service.auditlog.events import AuditEvent, EventType
from service.clock import Clock, utc_now
from service.crypto.vault import PayloadShreddedError, PayloadUnreadableError, PayloadVault
from service.errors import Code, HandoverError
from service.identity.staff import StaffIdentity
from service.store import db, messages

MIN_REASON, MAX_REASON = 10, 500
MIN_WORDS, LONGEST_WORD = 2, 60
REASON_RULE = (
    f"{MIN_REASON}-{MAX_REASON} characters on one line, at least {MIN_WORDS} words, none longer than {LONGEST_WORD}"
    " characters"
)


def reason_problem(reason: str) -> str | None:
    """What keeps `reason` from standing as the stated reason for a payload read (None: nothing). A reason is words
    a person can read on the audit page: 10-500 characters on one line, at least two words (runs with a letter),
    and no unbroken run over 60 characters, so that no reason can blow the audit page wide."""
    reason = reason.strip()
    if not MIN_REASON <= len(reason) <= MAX_REASON:
        return "length"
    if any(ord(c) < 32 or c == "\x7f" for c in reason):
        return "control-character"
    runs = reason.split()
    if sum(1 for run in runs if any(c.isalpha() for c in run)) < MIN_WORDS:
        return "too-few-words"
    if any(len(run) > LONGEST_WORD for run in runs):
        return "word-too-long"
    return None


async def read_payload(
    pool: asyncpg.Pool,
    message_id: UUID,
    reader: StaffIdentity,
    reason: str,
    clock: Clock = utc_now,
    *,
    vault: PayloadVault,
) -> bytes:
    """The message's original bytes for `reader`, who must state why (`reason_problem` finds nothing wrong)."""
    reason = reason.strip()
    if reason_problem(reason) is not None:
        raise HandoverError(
            Code.BAD_HEADER,
            f"state why you need this payload in 'reason' ({REASON_RULE}); the reason is kept in the audit log",
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
        await appending.append_event(
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
