"""One recipient's push queue: lease its due jobs, push each (at most `concurrency` at once), and record what
happened. Every recipient has its own queue, circuit breaker and lease query, so a dead or slow endpoint only
ever delays its own messages (one queue per destination, as Synapse's federation sender does).

A job's life here: leased (the attempt is counted) → payload opened → pushed → recorded in one transaction:
delivered (with its audit event), rescheduled with backoff, or dead-lettered with a report to the sender. If the
KEK is unavailable the job is released untouched and the relay pauses. If the process dies anywhere in between,
the lease simply expires and another attempt follows; the recipient recognises the redelivery (409).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from service.auditlog.events import AuditEvent, EventType
from service.background import FAULTS
from service.clock import Clock
from service.crypto.envelope import PayloadUnreadableError
from service.crypto.vault import PayloadShreddedError, PayloadVault
from service.delivery.backoff import retry_delay
from service.delivery.circuit import CircuitBreaker
from service.delivery.hubmail import HUB
from service.delivery.nondelivery import DeadLetterReason, DeadLetters
from service.delivery.push import PushClient, PushOutcome, PushRequest, Verdict
from service.delivery.relay_settings import RelaySettings
from service.errors import Code, HandoverError
from service.store import audit, circuits, db, outbox
from service.store.outbox import LeasedJob

log = logging.getLogger("handover.delivery")

PushObserver = Callable[[str, str, float], None]
"""Told of every push attempt: recipient ODS code, verdict (delivered, retry, rejected), seconds it took."""


@dataclass
class KeyGate:
    """Shared by a relay's queues: closed (`paused`) from the first sign that the KEK is unavailable until the
    relay sees it work again. While closed no queue leases anything."""

    paused: bool = False

    def pause(self) -> None:
        if not self.paused:
            log.error("push delivery paused: the key-encryption key is unavailable")
        self.paused = True

    def resume(self) -> None:
        if self.paused:
            log.warning("push delivery resumed: the key-encryption key is available again")
        self.paused = False


def delivered_event(job: LeasedJob, now: datetime, *, channel: str, **details: str) -> AuditEvent:
    """The audit event of a job delivered by the relay over `channel` (push, mesh), with further ids/codes."""
    return AuditEvent(
        type=EventType.MESSAGE_DELIVERED,
        outcome="delivered",
        actor=HUB,
        at=now,
        message_id=job.message_id,
        details={"channel": channel, "recipient": job.recipient_ods, **details},
    )


class DestinationQueue:
    """The push queue of recipient `ods` at `endpoint` (which follows registry reloads)."""

    def __init__(
        self,
        ods: str,
        endpoint: str,
        *,
        pool: asyncpg.Pool,
        vault: PayloadVault,
        push: PushClient,
        dead_letters: DeadLetters,
        settings: RelaySettings,
        gate: KeyGate,
        clock: Clock,
        rng: random.Random,
        on_push: PushObserver | None = None,
    ) -> None:
        self.ods = ods
        self._on_push = on_push
        self.endpoint = endpoint
        self._pool = pool
        self._vault = vault
        self._push = push
        self._dead_letters = dead_letters
        self._settings = settings
        self._gate = gate
        self._clock = clock
        self._rng = rng
        self.circuit = CircuitBreaker(settings.failure_threshold, settings.circuit_cooldown)
        self._circuit_saved: tuple[int, datetime | None] | None = None
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._unrecorded: dict[int, LeasedJob] = {}
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._running: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------------------------------- the steps

    async def lease(self, limit: int) -> list[LeasedJob]:
        """Lease up to `limit` due jobs of this recipient (none while the KEK is unavailable)."""
        if limit <= 0 or self._gate.paused:
            return []
        now = self._clock()
        async with db.transaction(self._pool) as conn:
            return await outbox.lease_due_jobs(
                conn,
                self.ods,
                now=now,
                lease_until=now + self._settings.lease,
                lease_token=uuid.uuid4(),
                limit=limit,
            )

    async def attempt(self, job: LeasedJob) -> PushOutcome | None:
        """Open the payload and push it once. None when there is nothing to record: the KEK was unavailable (the
        job was released, the relay paused) or the payload is unreadable (the job was dead-lettered)."""
        try:
            body = await self._vault.open(job.payload)
        except HandoverError as err:
            if err.code is not Code.UNAVAILABLE:
                raise
            self._gate.pause()
            await self.release(job)
            return None
        except (PayloadUnreadableError, PayloadShreddedError):
            log.error("stored payload unreadable: dead-lettered", extra={"message_id": str(job.message_id)})
            await self._dead_letters.dead_letter(
                job.delivery_id, DeadLetterReason.PAYLOAD_UNREADABLE, lease_token=job.lease_token
            )
            return None
        request = PushRequest(
            self.endpoint, job.recipient_ods, job.sender_ods, job.message_id, job.correlation_id, body
        )
        started = time.perf_counter()
        outcome = await self._push.push(request, now=self._clock())
        if self._on_push is not None:
            self._on_push(job.recipient_ods, outcome.verdict.value, time.perf_counter() - started)
        return outcome

    async def record(self, job: LeasedJob, outcome: PushOutcome) -> None:
        """Record an attempt's outcome (module docstring); feeds the circuit breaker, whose state is saved."""
        await self._record(job, outcome)
        try:
            await self._save_circuit()
        except HandoverError:  # the outcome is recorded; the circuit's row catches up at the next change
            log.warning("circuit state not saved (store unavailable)", extra={"recipient": self.ods})

    async def _save_circuit(self) -> None:
        """Store the circuit's state when it changed, so the deliveries page (any process) can show it."""
        state = (self.circuit.failures, self.circuit.open_until)
        if state == self._circuit_saved:
            return
        async with db.transaction(self._pool) as conn:
            await circuits.save_circuit(conn, self.ods, failures=state[0], open_until=state[1], now=self._clock())
        self._circuit_saved = state

    async def _record(self, job: LeasedJob, outcome: PushOutcome) -> None:
        now = self._clock()
        if outcome.verdict is Verdict.DELIVERED:
            self.circuit.record_success()
            await self._mark_delivered(job, outcome.status)
        elif outcome.verdict is Verdict.REJECTED:
            self.circuit.record_success()  # the endpoint answered: it is up, the message is the problem
            await self._dead_letters.dead_letter(
                job.delivery_id, DeadLetterReason.RECIPIENT_REFUSED, lease_token=job.lease_token, status=outcome.status
            )
        else:
            self.circuit.record_failure(now, retry_after=outcome.retry_after)
            deadline = job.created_at + self._settings.window
            if now >= deadline:
                await self._dead_letters.dead_letter(
                    job.delivery_id, DeadLetterReason.WINDOW_EXPIRED, lease_token=job.lease_token, status=outcome.status
                )
                return
            delay = retry_delay(
                job.attempts,
                retry_after=outcome.retry_after,
                rng=self._rng,
                base=self._settings.backoff_base,
                cap=self._settings.backoff_cap,
            )
            async with db.transaction(self._pool) as conn:
                await outbox.reschedule(
                    conn,
                    job.delivery_id,
                    job.lease_token,
                    next_attempt_at=min(now + delay, deadline),
                    error=outcome.error,
                    status=outcome.status,
                )

    async def release(self, job: LeasedJob) -> None:
        """Give the job back untouched (no attempt counted)."""
        async with db.transaction(self._pool) as conn:
            await outbox.release(conn, job.delivery_id, job.lease_token)

    async def process(self, job: LeasedJob) -> None:
        outcome = await self.attempt(job)
        if outcome is not None:
            await self.record(job, outcome)

    async def _mark_delivered(self, job: LeasedJob, status: int | None) -> None:
        now = self._clock()
        async with db.transaction(self._pool) as conn:
            if await outbox.mark_delivered(conn, job.delivery_id, now=now, status=status):
                await audit.append_event(conn, delivered_event(job, now, channel="push", status=str(status)))

    # ------------------------------------------------------------------------------------- the running queue

    def allowance(self) -> int:
        """How many more pushes may start now (circuit and per-recipient concurrency)."""
        return self.circuit.allowance(self._clock(), self._settings.concurrency) - len(self._tasks)

    async def drain_once(self) -> int:
        """Lease what may be pushed now and process it to the end; returns how many jobs were leased."""
        jobs = await self.lease(self.allowance())
        await asyncio.gather(*(self._process_tracked(job) for job in jobs))
        return len(jobs)

    def wake(self) -> None:
        self._changed.set()

    def start(self) -> None:
        """Run in the background (`run`) until `stop`."""
        if self._running is None:
            self._running = asyncio.create_task(self.run())

    async def run(self) -> None:
        """Push until `stop`: lease as slots free up, otherwise look again every poll interval or when woken."""
        while not self._stopping.is_set():
            free = self.allowance()
            try:
                jobs = await self.lease(free)
            except HandoverError:
                FAULTS.count("relay-push-queue")
                log.warning("push queue idle: store unavailable", extra={"recipient": self.ods})
                jobs = []
            except Exception:  # the relay's loop: keep the queue alive, look again after the poll interval
                FAULTS.count("relay-push-queue")
                log.exception("push queue fault", extra={"recipient": self.ods})
                jobs = []
            for job in jobs:
                task = asyncio.create_task(self._process_tracked(job))
                self._tasks[job.delivery_id] = task
                task.add_done_callback(functools.partial(self._finished, job.delivery_id))
            if jobs and len(jobs) == free:
                continue  # perhaps more due: go round as soon as a slot is free (run() waits below if none)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=self._settings.poll_seconds)
            self._changed.clear()

    async def stop(self, grace_seconds: float) -> None:
        """Stop leasing; give pushes in flight `grace_seconds` to finish, then cancel them and release their jobs."""
        self._stopping.set()
        self.wake()
        if self._running is not None:
            await self._running  # no lease after this point, so no push starts after the snapshot below
            self._running = None
        pending = set(self._tasks.values())
        if pending:
            _, pending = await asyncio.wait(pending, timeout=grace_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for job in list(self._unrecorded.values()):
            try:
                await self.release(job)
            except HandoverError:
                log.warning("leased job not released (store unavailable): its lease will expire")
        self._unrecorded.clear()

    def _finished(self, delivery_id: int, _: object = None) -> None:
        self._tasks.pop(delivery_id, None)
        self._changed.set()

    async def _process_tracked(self, job: LeasedJob) -> None:
        self._unrecorded[job.delivery_id] = job
        try:
            await self.process(job)
        except HandoverError:
            log.warning(
                "attempt not recorded (store unavailable): its lease will expire", extra={"recipient": self.ods}
            )
        except asyncio.CancelledError:
            raise  # stop() releases the job
        except Exception:  # the relay's loop: one bad job must not stop the queue
            FAULTS.count("relay-push-queue")
            log.exception("push attempt failed unexpectedly", extra={"message_id": str(job.message_id)})
        self._unrecorded.pop(job.delivery_id, None)
