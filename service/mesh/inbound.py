"""MESH inbound: messages trusts send to the hub's MESH mailbox go through the same intake as HTTP.

For each message in the inbox: read it (not acknowledging), find the participant whose registry entry names the
MESH sender's mailbox (that binding stands in for the bearer token: the intake then requires the signer,
MessageHeader.sender and this participant to be one trust), submit it with an idempotency key derived from the
MESH message id, send the hub-signed receipt (workflow `HANDOVER_RECEIPT`) or the OperationOutcome of the refusal
(`HANDOVER_OUTCOME`) back to the sender's mailbox, and only then acknowledge the MESH message.

Nothing is acknowledged before its outcome is durable: while the store (or the KEK) is unavailable the message
stays in the inbox and is read again on the next poll. A crash after the commit and before the acknowledgement
leaves the message in the inbox too; reading it again gives the same idempotency key, so the intake answers
with the original receipt (`replayed`) and accepts nothing twice. MESH reports (non-delivery of what the hub
sent) are handed to the relay's MESH channel.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from service.background import FAULTS
from service.errors import Code, HandoverError, operation_outcome
from service.intake import Intake, Submission
from service.mesh.mailbox import MeshMailbox, MeshRefusedError, MeshUnavailableError, ReceivedMessage
from service.mesh.settings import OUTCOME_WORKFLOW, RECEIPT_WORKFLOW
from service.registry import Participant, Registry

log = logging.getLogger("handover.mesh")
_REQUEST_NAMESPACE = uuid.UUID("6d657368-2d69-4e62-8f75-6e642d6b6579")

ReportHandler = Callable[[ReceivedMessage], Awaitable[bool]]


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    REPLAYED = "replayed"  # read again (e.g. after a crash before the acknowledgement): the original receipt
    REFUSED = "refused"
    REPORT = "report"


@dataclass(frozen=True)
class InboundResult:
    """What became of one MESH message; `reply` is what was sent back to its sender (None for reports)."""

    mesh_message_id: str
    outcome: Outcome
    reply: bytes | None
    code: Code | None = None


def request_id_for(sender_mailbox: str, mesh_message_id: str) -> uuid.UUID:
    """The idempotency key of a MESH message: the same each time the same message is read."""
    return uuid.uuid5(_REQUEST_NAMESPACE, f"{sender_mailbox}/{mesh_message_id}")


def participant_by_mailbox(registry: Registry, mailbox: str | None) -> Participant | None:
    if not mailbox:
        return None
    for participant in registry.participants.values():
        if participant.active and participant.mesh_mailbox == mailbox.upper():
            return participant
    return None


class MeshInbound:
    """Reads the hub's MESH `mailbox` into `intake`. `registry` gives the current registry (it follows reloads);
    `on_report` settles the delivery a MESH report is about; messages over `max_body_bytes` are refused."""

    def __init__(
        self,
        intake: Intake,
        mailbox: MeshMailbox,
        registry: Callable[[], Registry],
        *,
        on_report: ReportHandler,
        max_body_bytes: int,
    ) -> None:
        self._intake = intake
        self._mailbox = mailbox
        self._registry = registry
        self._on_report = on_report
        self._max_body_bytes = max_body_bytes

    async def poll_once(self) -> list[InboundResult]:
        """Read and answer every message now in the inbox. MeshUnavailableError and HandoverError(UNAVAILABLE) end
        the pass: what was not acknowledged is read again next time. Any other fault is logged and leaves that one
        message in the inbox, without holding up the others."""
        results = []
        for message_id in await self._mailbox.inbox():
            try:
                results.append(await self.read_and_answer(message_id))
            except (MeshUnavailableError, HandoverError):
                raise
            except Exception:  # one message's fault must not stop the inbox: it stays there, unacknowledged
                FAULTS.count("mesh-inbound")
                log.exception("MESH message not answered; left in the inbox")
        return results

    async def read_and_answer(self, mesh_message_id: str, *, acknowledge: bool = True) -> InboundResult:
        """Read, submit, reply, then (unless `acknowledge` is False) acknowledge one MESH message."""
        message = await self._mailbox.retrieve(mesh_message_id, limit=self._max_body_bytes)
        if message.message_type == "REPORT":
            settled = await self._on_report(message)
            log.info("MESH report read", extra={"code": "settled" if settled else "no-pending-delivery"})
            result = InboundResult(mesh_message_id, Outcome.REPORT, None)
        else:
            result = await self._submit(message)
            if message.sender:
                workflow = OUTCOME_WORKFLOW if result.outcome is Outcome.REFUSED else RECEIPT_WORKFLOW
                assert result.reply is not None
                try:
                    await self._mailbox.send(
                        message.sender,
                        result.reply,
                        workflow_id=workflow,
                        local_id=mesh_message_id,  # the trust matches the reply to what it sent by this
                        subject=f"Handover {result.outcome.value}",
                    )
                except MeshRefusedError:  # e.g. the sender's mailbox closed since: the outcome stands, unreported
                    log.warning("MESH refused the reply to a message", extra={"code": result.outcome.value})
        if acknowledge:
            await self._mailbox.acknowledge(mesh_message_id)
        return result

    async def _submit(self, message: ReceivedMessage) -> InboundResult:
        sender = participant_by_mailbox(self._registry(), message.sender)
        request_id = request_id_for(message.sender or "", message.message_id)
        try:
            if sender is None:
                raise HandoverError(
                    Code.UNAUTHENTICATED,
                    "The sending MESH mailbox is not registered to any participant of this network",
                )
            if len(message.body) > self._max_body_bytes:
                raise HandoverError(
                    Code.PAYLOAD_TOO_LARGE,
                    f"The message is larger than the hub's limit of {self._max_body_bytes} bytes",
                )
            accepted = await self._intake.accept(Submission(message.body, sender.ods, request_id, None))
        except HandoverError as err:
            if err.code is Code.UNAVAILABLE:
                raise  # not durable: leave it in the inbox, read it again on the next poll
            await self._intake.record_refusal(sender.ods if sender else None, request_id, message.body, err.code)
            log.info("MESH message refused", extra={"code": err.code.value})
            outcome = operation_outcome(err.issues)
            return InboundResult(message.message_id, Outcome.REFUSED, json.dumps(outcome).encode(), err.code)
        verdict = Outcome.REPLAYED if accepted.replayed else Outcome.ACCEPTED
        log.info(f"MESH message {verdict.value}", extra={"message_id": str(accepted.message_id), "sender": sender.ods})
        return InboundResult(message.message_id, verdict, accepted.receipt)
