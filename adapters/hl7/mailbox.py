"""From the hub to the EPR: poll the trust's mailbox, hand each message the EPR can take to its MLLP listener as
HL7 v2, and acknowledge it at the hub only after the EPR's AA (or CA).

Nothing one message does stops the loop: a message no HL7 message maps (the hub's own alerts and reports, which
carry no sender) stays in the mailbox, logged and counted once; a message whose handling fails is logged by its
hub id and the exception's type (never its content), counted, left in the mailbox and tried again later, less
and less often; the messages after it are still delivered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from adapters.hl7 import answers, outbound, text
from adapters.hl7.backoff import Backoff
from adapters.hl7.metrics import ConnectorMetrics
from adapters.hl7.queue import DiskQueue
from adapters.trust_client import ReceiptError, TrustClient

log = logging.getLogger("handover.hl7")

MAX_MESSAGE_BACKOFF_SECONDS = 300.0  # a message that keeps failing is tried again at least this often
MAX_POLL_BACKOFF_SECONDS = 60.0  # the mailbox or the EPR unreachable: the poll slows down to this
STUCK_AFTER = 5  # failed hand-overs in a row after which a message is logged as an error and shown as stuck
UNREACHABLE = (aiohttp.ClientError, OSError, TimeoutError)

Exchange = Callable[[bytes], Awaitable[bytes]]  # one message to the EPR over MLLP → the EPR's raw answer


class MailboxDelivery:
    """The trust's mailbox → the EPR, through `exchange`; the EPR's answers read by adapters/hl7/answers.py."""

    def __init__(
        self,
        client: TrustClient,
        queue: DiskQueue,
        ods: str,
        exchange: Exchange,
        *,
        metrics: ConnectorMetrics,
        poll: float,
    ) -> None:
        self.client, self.queue, self.ods, self.exchange, self.metrics = client, queue, ods, exchange, metrics
        self.poll = poll
        self.held = Backoff(poll, MAX_MESSAGE_BACKOFF_SECONDS)  # per mailbox message id
        self._reported: set[str] = set()  # ids already logged and counted as unmapped or unverifiable

    async def loop(self) -> None:
        """Poll for ever; every fault is logged and slows the poll down (bounded), none ends the loop."""
        failures = 0
        while True:
            try:
                await self.deliver_received()
                failures = 0
            except UNREACHABLE as exc:
                failures += 1
                log.warning("mailbox or EPR unreachable (%s); %d failed poll(s) in a row", type(exc).__name__, failures)
            except Exception as exc:  # noqa: BLE001 - the loop must outlive anything a poll raises
                failures += 1
                self.metrics.mailbox_errors.labels(type(exc).__name__).inc()
                log.error("the mailbox poll failed (%s); trying again later", type(exc).__name__)
            self.metrics.mailbox_failed_polls.set(failures)
            await asyncio.sleep(min(MAX_POLL_BACKOFF_SECONDS, self.poll * 2 ** min(failures, 16)))

    async def deliver_received(self) -> int:
        """Hand every message in the trust's inbox to the EPR; acknowledge at the hub each one the EPR took.
        Returns how many were delivered. Messages no HL7 message maps stay in the mailbox."""
        delivered = 0
        items = await self.client.inbox()
        ids = [str(item.get("id", "")) for item in items]
        self.held.keep_only(ids)
        self._reported.intersection_update(ids)
        for message_id in ids:
            if message_id in self._reported or not self.held.due(message_id):
                continue
            try:
                if await self._deliver(message_id):
                    delivered += 1
            except UNREACHABLE:
                raise  # the hub or the EPR is down: the whole poll backs off
            except Exception as exc:  # noqa: BLE001 - one bad message must not stop the others
                count = self.held.failed(message_id)
                self.metrics.mailbox_errors.labels(type(exc).__name__).inc()
                log.error(
                    "mailbox message %s could not be handed to the EPR (%s, %d time(s)); left in the mailbox",
                    message_id,
                    type(exc).__name__,
                    count,
                )
        self.metrics.mailbox_stuck.set(sum(self.held.failures(i) >= STUCK_AFTER for i in ids))
        return delivered

    async def _deliver(self, message_id: str) -> bool:
        try:
            bundle, signature = await self.client.fetch(message_id)
        except ReceiptError:
            self._reported.add(message_id)
            log.error("mailbox message %s does not verify; left there, not given to the EPR", message_id)
            return False
        header = bundle["entry"][0]["resource"]
        event = str(header.get("eventCoding", {}).get("code", "unknown"))
        message = None if signature.owner_ods == "hub" else self._for_epr(bundle, header, event)
        if message is None:
            self._reported.add(message_id)
            self.metrics.mailbox_unmapped.labels(event).inc()
            log.warning("mailbox message %s (%s) has no HL7 mapping; left in the mailbox", message_id, event)
            return False
        answer = answers.read(await self.exchange(message), _control_id(message))
        self.metrics.epr_answers.labels(answer.outcome).inc()
        if not answer.delivered:
            self._not_taken(message_id, answer)
            return False
        self.held.succeeded(message_id)
        await self.client.acknowledge(message_id)
        return True

    def _not_taken(self, message_id: str, answer: answers.Answer) -> None:
        """The EPR refused the message or its answer cannot be read: keep it, try again later, say which field."""
        count = self.held.failed(message_id)
        what = "refused" if answer.outcome == answers.REFUSED else "answered unreadably"
        level = logging.ERROR if count >= STUCK_AFTER else logging.WARNING
        log.log(
            level,
            "the EPR %s mailbox message %s (%s); %d time(s) in a row, kept in the mailbox, next try in %.0f s",
            what,
            message_id,
            answer.problem,
            count,
            self.held.delay(count),
        )

    def _for_epr(self, bundle: dict[str, Any], header: dict[str, Any], event: str) -> bytes | None:
        if event == "transfer-of-care":
            task = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Task")
            self.queue.keep_received(task["identifier"][0]["value"], bundle)
        return outbound.for_epr(bundle, self.ods, self.queue.sent_control_ids())


def _control_id(message: bytes) -> str:
    """MSH-10 of a message this connector wrote for the EPR."""
    first = message.decode("utf-8").split("\r", 1)[0]
    fields = first.split("|")
    return text.decode(fields[9]) if len(fields) > 9 else ""
