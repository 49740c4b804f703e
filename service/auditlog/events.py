"""Audit events and the leaf bytes that represent them in the log.

An event records who did what to which message and with what outcome: ids, ODS codes, codes, times and
the SHA-256 of the canonical payload. It never carries clinical content. Its leaf is the RFC 8785 form of
the event, and its leaf hash is SHA-256(0x00 || leaf) as RFC 9162 defines for Merkle tree leaves.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from service.canonical import canonical_json


class EventType(StrEnum):
    MESSAGE_ACCEPTED = "message-accepted"
    MESSAGE_REFUSED = "message-refused"
    MESSAGE_FETCHED = "message-fetched"
    MESSAGE_DELIVERED = "message-delivered"
    # Emitted by later work; details carry ids and codes only:
    KEY_CHANGED = "key-changed"  # details: owner, kid, change (init | rotate | revoke), status
    STAFF_LOGIN = "staff-login"  # actor: the staff user id; details: role, identity provider
    ALERT_SENT = "alert-sent"  # actor: hub; outcome: <kind>-overdue; details: awaited message, waiting, owed_by
    PAYLOAD_READ = "payload-read"  # actor: the staff user id; message_id; details: reason (as stated)
    # actor: hub; outcome: dead-letter; message_id; details: channel, recipient, reason, attempts (status, report)
    MESSAGE_DEAD_LETTERED = "message-dead-lettered"
    # actor: hub; outcome: shredded; message_id; details: owner data-key, change shred, event, sender, recipient
    PAYLOAD_SHREDDED = "payload-shredded"


@dataclass(frozen=True)
class AuditEvent:
    """One fact for the log. `details` holds further ids and codes only: never names or clinical values."""

    type: EventType
    outcome: str
    actor: str
    at: datetime
    message_id: UUID | None = None
    details: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type.value,
            "outcome": self.outcome,
            "actor": self.actor,
            "at": self.at.isoformat(timespec="microseconds"),
        }
        if self.message_id is not None:
            body["message_id"] = str(self.message_id)
        if self.details:
            body["details"] = dict(sorted(self.details.items()))
        return body

    def leaf(self) -> bytes:
        """The bytes stored in the log: RFC 8785 canonical JSON of the event."""
        return canonical_json(self.as_json())


def leaf_hash(leaf: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256 of 0x00 followed by the leaf bytes."""
    return hashlib.sha256(b"\x00" + leaf).digest()
