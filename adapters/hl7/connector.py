"""The connector's three jobs: take HL7 v2 from the EPR over MLLP (answering AA only after the hub's verified
receipt), send the durable queue to the hub in order, and hand what the trust receives to the EPR's MLLP
endpoint (acknowledging it at the hub only after the EPR's AA).

The EPR waits (HL7 original acknowledgement mode): its connection stays open while the hub is unreachable,
and the message is already on disk; an EPR that times out and re-sends the same MSH-10 gets the same ACK, and
the hub receives the message once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
import hl7.mllp

from adapters.hl7 import inbound, outbound
from adapters.hl7.errors import APPLICATION_ERROR, DATA_TYPE_ERROR, Hl7RefusalError
from adapters.hl7.mailbox import MailboxDelivery
from adapters.hl7.metrics import ConnectorMetrics
from adapters.hl7.queue import DiskQueue, Entry, key_of
from adapters.trust_client import ReceiptError, TrustClient

log = logging.getLogger("handover.hl7")

MAX_FRAME_BYTES = 1024 * 1024  # larger MLLP frames are refused (AR) and the connection closed
MAX_SKIPPED_BYTES = 64 * 1024 * 1024  # beyond this an oversized frame is not read to its end
MAX_SEND_BACKOFF_SECONDS = 60.0  # the hub cannot take the queue: the pause between attempts grows to this
SEND_FAILURES_LOGGED_AS_ERROR = 5  # failed attempts in a row after which the stall is logged as an error
HUB_FIELDS = {  # the FHIR element a hub refusal names → the HL7 field it came from (adapters/README.md)
    "Patient.identifier": "PID^1^3^1",
    "Patient": "PID^1",
    "MessageHeader.destination": "MSH^1^6",
    "MessageHeader.sender": "MSH^1^4",
    "ServiceRequest": "RF1^1",
    "Task": "RF1^1",
    "Composition": "OBX^1",
    "Encounter": "PV1^1",
}


@dataclass(frozen=True)
class EprEndpoint:
    host: str
    port: int


class Hl7Connector:
    """One trust's connector: `client` talks to the hub as the trust, `queue` is its disk, `epr` (if any) is
    where received messages are delivered."""

    def __init__(
        self,
        client: TrustClient,
        queue: DiskQueue,
        trusts: inbound.Trusts,
        *,
        epr: EprEndpoint | None = None,
        retry_seconds: float = 2.0,
        poll_seconds: float = 2.0,
    ) -> None:
        self.client, self.queue, self.trusts, self.epr = client, queue, trusts, epr
        self.retry_seconds, self.poll_seconds = retry_seconds, poll_seconds
        self._finished: dict[str, asyncio.Event] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._server: asyncio.Server | None = None
        self.metrics = ConnectorMetrics()
        self.mailbox = MailboxDelivery(
            client, queue, trusts.ods, self._exchange, metrics=self.metrics, poll=poll_seconds
        )

    async def start(self, host: str, port: int) -> int:
        """Listen for the EPR and start the sender (and mailbox) loops; returns the bound port."""
        self._server = await hl7.mllp.start_hl7_server(self._serve_epr, host, port, limit=MAX_FRAME_BYTES)
        self._tasks.append(asyncio.create_task(self._send_loop()))
        if self.epr is not None:
            self._tasks.append(asyncio.create_task(self.mailbox.loop()))
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _serve_epr(self, reader: hl7.mllp.HL7StreamReader, writer: hl7.mllp.HL7StreamWriter) -> None:
        try:
            while True:
                try:
                    block = await reader.readblock()
                except ValueError:  # over MAX_FRAME_BYTES: skip the rest of the frame, refuse it, hang up
                    await _skip_frame(reader)
                    refusal = Hl7RefusalError("MSH^1", DATA_TYPE_ERROR, "the MLLP frame is larger than 1 MiB")
                    writer.writeblock(outbound.ack("", outbound.Reply(self.trusts.ods), code="AR", refusal=refusal))
                    await writer.drain()
                    return
                except hl7.mllp.InvalidBlockError:  # bytes before <VT>: refuse, and go on with the next frame
                    refusal = Hl7RefusalError("MSH^1", DATA_TYPE_ERROR, "the frame does not start with <VT>")
                    writer.writeblock(outbound.ack("", outbound.Reply(self.trusts.ods), code="AR", refusal=refusal))
                    await writer.drain()
                    continue
                writer.writeblock(await self.answer(block))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return  # a truncated frame or a dropped connection: nothing was acknowledged
        except Exception as exc:  # noqa: BLE001 - our own fault (a full disk, a key): no ACK, the EPR sends again
            log.error("an EPR message could not be taken (%s); connection closed without an ACK", type(exc).__name__)
        finally:
            writer.close()

    async def answer(self, raw: bytes) -> bytes:
        """The ACK for one EPR message, after its outcome at the hub is known."""
        try:
            parsed = inbound.parse(raw)
        except Hl7RefusalError as refusal:
            control_id, application, facility, trigger = inbound.salvage(raw)
            reply = outbound.Reply(self.trusts.ods, application, facility, trigger)
            return outbound.ack(control_id, reply, code="AR", refusal=refusal)
        reply = outbound.Reply(
            self.trusts.ods, inbound.field(parsed.message, "MSH", 3), parsed.sending_facility, parsed.trigger
        )
        key = key_of(parsed.sending_facility, parsed.control_id)
        if not self.queue.is_pending(key) and self.queue.done(key) is None:
            try:
                bundle = inbound.to_bundle(parsed, self.trusts)
            except Hl7RefusalError as refusal:
                return outbound.ack(parsed.control_id, reply, code=refusal.ack_code, refusal=refusal)
            except Exception as exc:  # noqa: BLE001 - a mapping fault is an AR, never a dropped connection
                log.error("an EPR message could not be mapped (%s); answered AR", type(exc).__name__)
                fault = Hl7RefusalError("MSH^1^9", APPLICATION_ERROR, "the message could not be mapped")
                return outbound.ack(parsed.control_id, reply, code="AR", refusal=fault)
            signed = self.client.sign(bundle)
            self.queue.enqueue(
                Entry(parsed.control_id, reply.epr_application, parsed.sending_facility, parsed.trigger, signed)
            )
            self._wake.set()
        finished = self._finished.setdefault(key, asyncio.Event())
        while (done := self.queue.done(key)) is None:
            await finished.wait()
            finished.clear()
        assert done.ack is not None
        return done.ack.encode("utf-8")

    async def _send_loop(self) -> None:
        """Send the queue in order; while the hub cannot take it, wait longer each time (bounded): a new message
        from the EPR still wakes the loop at once."""
        failures = 0
        while True:
            self._wake.clear()
            try:
                sent = await self._send_pending()
            except Exception as exc:  # noqa: BLE001 - the sender must outlive anything one attempt raises
                log.error("sending the queue failed (%s); trying again later", type(exc).__name__)
                self.metrics.hub_send_failures.labels("error").inc()
                sent = False
            failures = 0 if sent else failures + 1
            if failures == SEND_FAILURES_LOGGED_AS_ERROR:
                log.error("the hub has not taken the queue for %d attempts in a row", failures)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), send_pause(failures, self.retry_seconds))

    async def _send_pending(self) -> bool:
        """Send what is pending, oldest first; False when the hub did not take one (the rest wait behind it)."""
        for entry in self.queue.pending():
            if not await self._send(entry):
                return False  # keep order: nothing overtakes a message the hub has not taken
        return True

    async def _send(self, entry: Entry) -> bool:
        reply = outbound.Reply(self.trusts.ods, entry.epr_application, entry.epr_facility, entry.trigger)
        try:
            result = await self.client.send(entry.signed, request_id=entry.request_id)
        except (aiohttp.ClientError, TimeoutError, OSError):
            log.warning("hub unreachable; %d message(s) queued", len(self.queue.pending()))
            self.metrics.hub_send_failures.labels("unreachable").inc()
            return False
        except ReceiptError:
            log.error("the hub's receipt does not verify; message kept queued")
            self.metrics.hub_send_failures.labels("receipt").inc()
            return False
        except ValueError:  # not JSON: a proxy's error page, a truncated body
            log.error("the hub's answer is not JSON; message kept queued")
            self.metrics.hub_send_failures.labels("unreadable").inc()
            return False
        if result.status >= 500 or result.status == 429:
            log.warning("the hub answered %d; %d message(s) queued", result.status, len(self.queue.pending()))
            self.metrics.hub_send_failures.labels("busy" if result.status == 429 else "server-error").inc()
            return False
        if result.accepted:
            ack = outbound.ack(entry.control_id, reply, code="AA", text="receipted by the hub")
        else:
            ack = outbound.ack(entry.control_id, reply, code="AE", refusal=_hub_refusal(result.body))
        self.queue.finish(entry, ack)
        self._finished.setdefault(entry.key, asyncio.Event()).set()
        return True

    async def deliver_received(self) -> int:
        """Hand every message in the trust's inbox to the EPR (see adapters/hl7/mailbox.py); how many were taken."""
        return await self.mailbox.deliver_received()

    async def _exchange(self, message: bytes) -> bytes:
        """One message to the EPR's MLLP listener; its answer's bytes (TimeoutError after 30 s)."""
        assert self.epr is not None
        reader, writer = await hl7.mllp.open_hl7_connection(self.epr.host, self.epr.port, limit=MAX_FRAME_BYTES)
        try:
            writer.writeblock(message)
            await writer.drain()
            return bytes(await asyncio.wait_for(reader.readblock(), 30))
        finally:
            writer.close()


def send_pause(failures: int, retry_seconds: float) -> float:
    """The wait before the next attempt after `failures` failed ones in a row: the retry interval, doubling from
    the second failure, at most MAX_SEND_BACKOFF_SECONDS."""
    return float(min(MAX_SEND_BACKOFF_SECONDS, retry_seconds * 2 ** min(max(failures - 1, 0), 16)))


async def _skip_frame(reader: asyncio.StreamReader) -> None:
    """Read and drop what is left of an oversized frame (up to MAX_SKIPPED_BYTES), so the sender reads our AR."""
    skipped, tail = 0, b""
    while skipped < MAX_SKIPPED_BYTES:
        chunk = await asyncio.wait_for(reader.read(65536), 30)
        if not chunk:
            return
        skipped += len(chunk)
        if b"\x1c\r" in tail + chunk:
            return
        tail = chunk[-1:]


def _hub_refusal(body: dict[str, Any]) -> Hl7RefusalError:
    """The hub's OperationOutcome as an ERR: its stable code in the text, the HL7 field its expression maps to."""
    issue = ((body.get("issue") if isinstance(body, dict) else None) or [{}])[0]
    issue = issue if isinstance(issue, dict) else {}
    codes = [c.get("code", "") for c in (issue.get("details") or {}).get("coding", [])]
    expression = next(iter(issue.get("expression") or []), "")
    location = next(
        (hl7_field for element, hl7_field in HUB_FIELDS.items() if expression.startswith(element)), "MSH^1^9"
    )
    text = f"refused by the hub: {', '.join(codes) or 'unknown'}"
    return Hl7RefusalError(location, APPLICATION_ERROR, text, "AE")
