"""Dead letters and their non-delivery reports.

A delivery that can never succeed (the recipient refused it with a 4xx, or it was not delivered within the
delivery window) is dead-lettered, and in the same transaction the hub writes a non-delivery report to the
original sender: a hub-signed `acknowledgement` message (``MessageHeader.response.code`` = ``fatal-error``,
``details`` → an OperationOutcome with our ``undeliverable`` code) stored, encrypted, in the sender's mailbox and
pushed too if the sender has an endpoint. ``non_delivery_reports`` allows exactly one report per dead letter, and
the dead-lettering itself only happens to a pending delivery, so a report is written exactly once however many
relays race. A message the hub itself sent (a report) that dies gets no report of its own.

Reports carry ids, ODS codes and status codes only, never a payload value.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

import asyncpg

from service.auditlog import appending
from service.auditlog.events import AuditEvent, EventType
from service.clock import Clock, utc_now
from service.delivery.hubmail import HUB, HubMail
from service.errors import Code, Issue, operation_outcome
from service.hubmessages import hub_header, signed_hub_message
from service.identity.signing import payload_sha256
from service.store import db, outbox, redeliveries
from service.store.outbox import DeadLetter

log = logging.getLogger("handover.delivery")
_REPORT_NAMESPACE = uuid.UUID("b0b5ad1e-3c5e-4d0b-8a8f-68616e646f76")


class DeadLetterReason(StrEnum):
    RECIPIENT_REFUSED = "recipient-refused"
    WINDOW_EXPIRED = "delivery-window-expired"
    PAYLOAD_UNREADABLE = "payload-unreadable"
    MESH_UNDELIVERABLE = "mesh-undeliverable"  # MESH refused it or reported it undeliverable (service/delivery/mesh.py)


@dataclass(frozen=True)
class NonDeliveryReport:
    message_id: UUID
    bundle_identifier: str
    header_id: str
    body: bytes
    sha256: str
    bundle: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def report_text(dead: DeadLetter, reason: DeadLetterReason, status: int | None, window: timedelta) -> str:
    """Plain English for the sender: which message, to whom, why; ids and codes only."""
    what = f"The message {dead.bundle_identifier} to {dead.recipient_ods} was not delivered"
    if reason is DeadLetterReason.RECIPIENT_REFUSED:
        return f"{what}: the recipient refused it (HTTP {status}). It will not be retried; send a corrected message."
    if reason is DeadLetterReason.WINDOW_EXPIRED:
        days = window.total_seconds() / 86400
        span = f"{days:g} days" if days >= 1 else f"{window.total_seconds():g} seconds"
        return f"{what} within {span} of acceptance: the recipient could not be reached. Contact the recipient."
    if reason is DeadLetterReason.MESH_UNDELIVERABLE:
        return f"{what}: MESH reported it undeliverable to the recipient's mailbox. Contact the recipient."
    return f"{what}: the hub could not read its stored copy. Send the message again."


def build_non_delivery_report(
    dead: DeadLetter,
    text: str,
    *,
    event_system: str,
    hub_private_jwk: Mapping[str, Any],
    now: datetime,
) -> NonDeliveryReport:
    """The hub-signed `acknowledgement` (fatal-error, OperationOutcome `undeliverable`) for `dead`, as bytes."""
    outcome: dict[str, Any] = {"id": str(uuid.uuid4()), **operation_outcome([Issue(Code.UNDELIVERABLE, text)])}
    header = hub_header(
        event_system=event_system,
        event="acknowledgement",
        to_ods=dead.sender_ods,
        response={
            "identifier": dead.message_header_id or str(dead.message_id),
            "code": "fatal-error",
            "details": {"reference": f"urn:uuid:{outcome['id']}"},
        },
    )
    signed, body = signed_hub_message([header, outcome], at=now, hub_private_jwk=hub_private_jwk)
    identifier = signed["identifier"]["value"]
    return NonDeliveryReport(uuid.uuid4(), identifier, header["id"], body, payload_sha256(signed), signed)


class DeadLetters:
    """Dead-letters deliveries with their reports, each in one transaction. Arguments: the pool, the hub's
    own-message sender (which signs the report and stores it encrypted: delivery/hubmail.py), the delivery window
    (for the report's text) and a clock."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        mail: HubMail,
        *,
        window: timedelta,
        clock: Clock = utc_now,
    ) -> None:
        self._pool = pool
        self._mail = mail
        self._window = window
        self._clock = clock

    async def dead_letter(
        self,
        delivery_id: int,
        reason: DeadLetterReason,
        *,
        lease_token: UUID | None,
        status: int | None = None,
        created_before: datetime | None = None,
    ) -> DeadLetter | None:
        """Dead-letter the delivery and report it to the sender; None if it was no longer ours to dead-letter.
        Raises HandoverError(UNAVAILABLE) (nothing changed) if the store or the KEK is unavailable."""
        now = self._clock()
        error = f"{reason.value} (HTTP {status})" if status is not None else reason.value
        async with db.transaction(self._pool) as conn:
            dead = await outbox.mark_dead_letter(
                conn,
                delivery_id,
                lease_token=lease_token,
                now=now,
                error=error,
                status=status,
                created_before=created_before,
            )
            if dead is None:
                return None
            report = None
            # A re-queued dead letter (redelivery.py) that dies again keeps its one report: the sender was told.
            if dead.sender_ods != HUB and not await redeliveries.has_report(conn, dead.delivery_id):
                report = await self._store_report(conn, dead, reason, status, now)
            await appending.append_event(conn, _dead_letter_event(dead, reason, status, report, now))
            if report is not None:
                await appending.append_event(conn, _report_event(dead, report, now))
        log.warning(
            "delivery dead-lettered",
            extra={"message_id": str(dead.message_id), "recipient": dead.recipient_ods, "code": reason.value},
        )
        return dead

    async def _store_report(
        self, conn: asyncpg.Connection, dead: DeadLetter, reason: DeadLetterReason, status: int | None, now: datetime
    ) -> NonDeliveryReport:
        text = report_text(dead, reason, status, self._window)
        report = build_non_delivery_report(
            dead, text, event_system=self._mail.event_system, hub_private_jwk=self._mail.signing_jwk(), now=now
        )
        await self._mail.post(
            conn,
            message_id=report.message_id,
            recipient_ods=dead.sender_ods,
            bundle=report.bundle,
            raw=report.body,
            at=now,
            request_id=uuid.uuid5(_REPORT_NAMESPACE, f"request/{dead.delivery_id}"),
        )
        await outbox.record_non_delivery_report(conn, dead.delivery_id, report.message_id, reason=reason.value, now=now)
        return report


def _dead_letter_event(
    dead: DeadLetter, reason: DeadLetterReason, status: int | None, report: NonDeliveryReport | None, now: datetime
) -> AuditEvent:
    details = {"channel": "none", "recipient": dead.recipient_ods, "reason": reason.value}
    details["attempts"] = str(dead.attempts)
    if status is not None:
        details["status"] = str(status)
    if report is not None:
        details["report_message_id"] = str(report.message_id)
    return AuditEvent(
        type=EventType.MESSAGE_DEAD_LETTERED,
        outcome="dead-letter",
        actor=HUB,
        at=now,
        message_id=dead.message_id,
        details=details,
    )


def _report_event(dead: DeadLetter, report: NonDeliveryReport, now: datetime) -> AuditEvent:
    return AuditEvent(
        type=EventType.MESSAGE_ACCEPTED,
        outcome="accepted",
        actor=HUB,
        at=now,
        message_id=report.message_id,
        details={
            "sender": HUB,
            "recipient": dead.sender_ods,
            "event": "acknowledgement",
            "bundle_identifier": report.bundle_identifier,
            "payload_sha256": report.sha256,
            "reports_on": str(dead.message_id),
        },
    )
