"""The relay's MESH channel: delivers to participants whose registry entry names a `mesh_mailbox` and no push
`endpoint`, through the hub's MESH mailbox (run by `handover mesh-bridge`).

A job's life here: leased → if no MESH message carries it yet, its original signed bytes are sent to the
recipient's mailbox (workflow `HANDOVER_<EVENT>`, local id = the delivery's stable request id, so a recipient can
recognise a resend) and the MESH message id is recorded with the job rescheduled for tracking; otherwise MESH's
tracking is asked about that message: `acknowledged` (the recipient downloaded and acknowledged it) → delivered,
audited; `undeliverable`/`error` → dead letter with the usual non-delivery report to the sender; still waiting →
look again after `track_every`. MESH refusing the send (e.g. an unknown mailbox) dead-letters at once; MESH out
of reach reschedules with the relay's backoff. MESH's own non-delivery reports, read from the hub's inbox by the
bridge, dead-letter the delivery they name (`on_report`). The relay's window still applies: a message not
acknowledged within it is dead-lettered.

If the process dies between MESH taking a message and its id being recorded, the next lease sends it again
under the same local id (at least once, as with push).
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta

import asyncpg

from service.background import FAULTS
from service.clock import Clock, utc_now
from service.crypto.envelope import PayloadUnreadableError
from service.crypto.vault import PayloadShreddedError, PayloadVault
from service.delivery.backoff import retry_delay
from service.delivery.destination import delivered_event
from service.delivery.nondelivery import DeadLetterReason, DeadLetters
from service.delivery.push import delivery_request_id
from service.delivery.relay_settings import RelaySettings
from service.errors import Code, HandoverError
from service.mesh.mailbox import MeshMailbox, MeshRefusedError, MeshUnavailableError, ReceivedMessage
from service.mesh.settings import workflow_id
from service.registry import Registry
from service.store import audit, db, outbox
from service.store import mesh as mesh_store
from service.store.mesh import MeshSend
from service.store.outbox import LeasedJob

log = logging.getLogger("handover.delivery")
_BATCH = 20

MeshRecipients = Callable[[], Mapping[str, str]]
"""The MESH mailbox of every participant delivered to through MESH, by ODS code (read on every pass)."""


def mesh_recipients(registry: Registry) -> dict[str, str]:
    """Participants with a `mesh_mailbox` and no push endpoint: the relay reaches them through MESH."""
    return {
        ods: p.mesh_mailbox
        for ods, p in registry.participants.items()
        if p.active and p.mesh_mailbox and not p.endpoint
    }


class MeshDelivery:
    """Delivers through `mailbox` (the hub's). Arguments: the pool, the payload vault, the hub's MESH mailbox, the
    dead letters (with their reports), the MESH recipients, the relay tuning, how often to track a sent message,
    a clock and a random source (jitter)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        vault: PayloadVault,
        mailbox: MeshMailbox,
        dead_letters: DeadLetters,
        *,
        recipients: MeshRecipients,
        settings: RelaySettings | None = None,
        track_every: timedelta = timedelta(seconds=30),
        clock: Clock = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self._pool = pool
        self._vault = vault
        self._mailbox = mailbox
        self._dead_letters = dead_letters
        self._recipients = recipients
        self._settings = settings or RelaySettings()
        self._track_every = track_every
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not a secret)

    async def run_once(self) -> int:
        """Lease and process every due MESH delivery; returns how many jobs were leased."""
        total = 0
        for ods, mailbox in self._recipients().items():
            while True:
                jobs = await self._lease(ods)
                for job in jobs:
                    try:
                        await self.attempt(job, mailbox)
                    except HandoverError:
                        raise  # the store or the KEK: end the pass; leases expire and the jobs come back
                    except Exception:  # one job's fault must not stop the others; its lease expires, it returns
                        FAULTS.count("mesh-delivery")
                        log.exception("MESH delivery attempt failed unexpectedly", extra={"recipient": ods})
                total += len(jobs)
                if len(jobs) < _BATCH:
                    break
        return total

    async def attempt(self, job: LeasedJob, recipient_mailbox: str) -> None:
        """Send the job by MESH if nothing carries it yet, else ask MESH what became of the message that does."""
        async with db.connection(self._pool) as conn:
            sent = await mesh_store.find_send(conn, job.delivery_id)
        if sent is None:
            await self._send(job, recipient_mailbox)
        else:
            await self._track(job, sent)

    async def on_report(self, report: ReceivedMessage) -> bool:
        """A MESH report (non-delivery) read from the hub's inbox: dead-letter the delivery it is about. False
        when it names no pending delivery of ours (already settled, or not ours)."""
        if not report.linked_message_id:
            return False
        async with db.connection(self._pool) as conn:
            delivery_id = await mesh_store.pending_delivery_for(conn, report.linked_message_id.upper())
        if delivery_id is None:
            return False
        dead = await self._dead_letters.dead_letter(delivery_id, DeadLetterReason.MESH_UNDELIVERABLE, lease_token=None)
        return dead is not None

    # ------------------------------------------------------------------------------------------- internals

    async def _lease(self, ods: str) -> list[LeasedJob]:
        now = self._clock()
        async with db.transaction(self._pool) as conn:
            return await outbox.lease_due_jobs(
                conn, ods, now=now, lease_until=now + self._settings.lease, lease_token=uuid.uuid4(), limit=_BATCH
            )

    async def _send(self, job: LeasedJob, recipient_mailbox: str) -> None:
        try:
            body = await self._vault.open(job.payload)
        except HandoverError as err:
            if err.code is not Code.UNAVAILABLE:
                raise
            await self._release(job)  # the KEK is unavailable: try again on a later pass
            return
        except (PayloadUnreadableError, PayloadShreddedError):
            log.error("stored payload unreadable: dead-lettered", extra={"message_id": str(job.message_id)})
            await self._dead_letters.dead_letter(
                job.delivery_id, DeadLetterReason.PAYLOAD_UNREADABLE, lease_token=job.lease_token
            )
            return
        try:
            mesh_id = await self._mailbox.send(
                recipient_mailbox,
                body,
                workflow_id=workflow_id(job.event),
                local_id=str(delivery_request_id(job.message_id, job.recipient_ods)),
                subject=f"Handover {job.event} {job.message_id}",
            )
        except MeshRefusedError as err:
            log.warning("MESH refused a message", extra={"message_id": str(job.message_id), "code": str(err)})
            await self._dead_letters.dead_letter(
                job.delivery_id, DeadLetterReason.MESH_UNDELIVERABLE, lease_token=job.lease_token
            )
            return
        except MeshUnavailableError as err:
            await self._retry(job, f"MESH unavailable: {err}")
            return
        now = self._clock()
        async with db.transaction(self._pool) as conn:
            await mesh_store.record_send(conn, job.delivery_id, mesh_id, recipient_mailbox, now=now)
            await outbox.reschedule(
                conn,
                job.delivery_id,
                job.lease_token,
                next_attempt_at=now + self._track_every,
                error=None,
                status=None,
            )
        log.info("sent by MESH", extra={"message_id": str(job.message_id), "recipient": job.recipient_ods})

    async def _track(self, job: LeasedJob, sent: MeshSend) -> None:
        try:
            tracking = await self._mailbox.track(sent.mesh_message_id)
        except (MeshUnavailableError, MeshRefusedError) as err:
            await self._retry(job, f"MESH tracking unavailable: {err}")
            return
        if tracking.status == "acknowledged":
            await self._mark_delivered(job, sent)
        elif tracking.status in ("undeliverable", "error"):
            await self._dead_letters.dead_letter(
                job.delivery_id, DeadLetterReason.MESH_UNDELIVERABLE, lease_token=job.lease_token
            )
        elif self._clock() >= job.created_at + self._settings.window:
            await self._dead_letters.dead_letter(
                job.delivery_id, DeadLetterReason.WINDOW_EXPIRED, lease_token=job.lease_token
            )
        else:
            async with db.transaction(self._pool) as conn:
                await outbox.reschedule(
                    conn,
                    job.delivery_id,
                    job.lease_token,
                    next_attempt_at=self._clock() + self._track_every,
                    error=None,
                    status=None,
                )

    async def _retry(self, job: LeasedJob, error: str) -> None:
        now = self._clock()
        deadline = job.created_at + self._settings.window
        if now >= deadline:
            await self._dead_letters.dead_letter(
                job.delivery_id, DeadLetterReason.WINDOW_EXPIRED, lease_token=job.lease_token
            )
            return
        delay = retry_delay(
            job.attempts, rng=self._rng, base=self._settings.backoff_base, cap=self._settings.backoff_cap
        )
        async with db.transaction(self._pool) as conn:
            await outbox.reschedule(
                conn,
                job.delivery_id,
                job.lease_token,
                next_attempt_at=min(now + delay, deadline),
                error=error,
                status=None,
            )

    async def _release(self, job: LeasedJob) -> None:
        async with db.transaction(self._pool) as conn:
            await outbox.release(conn, job.delivery_id, job.lease_token)

    async def _mark_delivered(self, job: LeasedJob, sent: MeshSend) -> None:
        now = self._clock()
        async with db.transaction(self._pool) as conn:
            if await mesh_store.mark_delivered(conn, job.delivery_id, now=now):
                event = delivered_event(
                    job, now, channel="mesh", mesh_mailbox=sent.recipient_mailbox, mesh_message_id=sent.mesh_message_id
                )
                await audit.append_event(conn, event)
