"""The push relay: delivers accepted messages from the outbox to every participant with a registered `endpoint`
(participants without one are pull-only: their mailbox is the only channel), and dead-letters what cannot be
delivered in time.

One `DestinationQueue` per push recipient (see destination.py), started and stopped as the registry changes;
a sweep that dead-letters every delivery (push or pull) still pending `window` after acceptance, each with its
non-delivery report; and a key gate: while the KEK is unavailable nothing is leased (the relay is paused) and the
relay checks the KEK every poll interval until it works again. Several relay processes can share one database:
leases use ``FOR UPDATE SKIP LOCKED``, and every state change is guarded by state and lease checks in SQL.

`start`/`stop` run it in the background (stop is graceful: see `DestinationQueue.stop`); `run_once` does one
deterministic pass (sweep, then each queue leases and processes what it may) for tests and tools.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping

import aiohttp
import asyncpg

from service.background import run_forever
from service.clock import Clock, utc_now
from service.crypto.vault import PayloadVault
from service.delivery.destination import DestinationQueue, KeyGate, PushObserver
from service.delivery.nondelivery import DeadLetterReason, DeadLetters
from service.delivery.push import PushClient
from service.delivery.relay_settings import RelaySettings
from service.identity.hubkey import HubKey
from service.registry import Registry
from service.store import db, outbox

log = logging.getLogger("handover.delivery")
_SWEEP_BATCH = 200

Endpoints = Callable[[], Mapping[str, str]]
"""The current push endpoints by ODS code (called on every supervisor pass, so registry reloads take effect)."""


def push_endpoints(registry: Registry) -> dict[str, str]:
    """Every current participant's push endpoint, by ODS code; participants without one are pull-only."""
    return {ods: p.endpoint for ods, p in registry.participants.items() if p.active and p.endpoint}


class Relay:
    """Pushes deliveries to recipients' endpoints. Arguments: the pool, the payload vault, the hub's private key
    (bearer tokens and report signatures), the handover-event CodeSystem url, the endpoints, the tuning, a clock,
    a random source (jitter), and optionally an HTTP session to use (else the relay makes its own)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        vault: PayloadVault,
        hub_private_jwk: HubKey,
        event_system: str,
        *,
        endpoints: Endpoints,
        settings: RelaySettings | None = None,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
        session: aiohttp.ClientSession | None = None,
        on_push: PushObserver | None = None,
    ) -> None:
        self.settings = settings or RelaySettings()
        self._on_push = on_push
        self._pool = pool
        self._vault = vault
        self._hub_key = hub_private_jwk
        self._endpoints = endpoints
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not a secret)
        self._session = session
        self._own_session = session is None
        self.gate = KeyGate()
        self.dead_letters = DeadLetters(
            pool, vault, hub_private_jwk, event_system, window=self.settings.window, clock=clock
        )
        self.queues: dict[str, DestinationQueue] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------------------------------------- running

    async def start(self) -> None:
        """Run in the background until `stop`."""
        self._stopping.clear()
        self._supervisor = asyncio.create_task(self._supervise())

    async def stop(self) -> None:
        """Stop leasing, let pushes in flight finish (bounded), release what is left, close the session."""
        self._stopping.set()
        self._wakeup.set()
        if self._supervisor is not None:
            await self._supervisor
            self._supervisor = None
        await asyncio.gather(*(self._stop_queue(ods) for ods in list(self.queues)), *self._retiring)
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def wake(self, recipient_ods: str | None = None) -> None:
        """Look for due work now (e.g. after an acceptance) instead of at the next poll."""
        for ods, queue in self.queues.items():
            if recipient_ods is None or ods == recipient_ods:
                queue.wake()
        self._wakeup.set()

    async def run_once(self) -> int:
        """One deterministic pass: check the KEK, follow the registry, sweep expired deliveries, and let every
        queue lease and fully process what it may now. Returns how many jobs were leased."""
        await self._check_keys()
        self._sync_queues(start_tasks=False)
        if self.gate.paused:
            return 0
        await self.sweep_expired()
        counts = await asyncio.gather(*(queue.drain_once() for queue in self.queues.values()))
        return sum(counts)

    def queue(self, ods: str) -> DestinationQueue | None:
        """The push queue of `ods` as the registry stands now; None for a pull-only participant."""
        self._sync_queues(start_tasks=False)
        return self.queues.get(ods)

    async def sweep_expired(self) -> int:
        """Dead-letter (with a report each) every delivery still pending `window` after acceptance and not leased."""
        total = 0
        while True:
            now = self._clock()
            cutoff = now - self.settings.window
            async with db.connection(self._pool) as conn:
                ids = await outbox.expired_delivery_ids(conn, created_before=cutoff, now=now, limit=_SWEEP_BATCH)
            for delivery_id in ids:
                dead = await self.dead_letters.dead_letter(
                    delivery_id, DeadLetterReason.WINDOW_EXPIRED, lease_token=None, created_before=cutoff
                )
                total += dead is not None
            if len(ids) < _SWEEP_BATCH:
                return total

    def circuit_states(self) -> dict[str, str]:
        """The state of this process's circuit breaker to each push recipient (for /metrics)."""
        now = self._clock()
        return {ods: queue.circuit.state(now).value for ods, queue in self.queues.items()}

    # ------------------------------------------------------------------------------------------- internals

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, limit_per_host=self.settings.concurrency * 2),
                auto_decompress=True,
            )
        return self._session

    def _sync_queues(self, *, start_tasks: bool) -> None:
        """Make the queues match the registry: a queue per push endpoint; endpoints that changed are followed."""
        wanted = dict(self._endpoints())
        for ods, endpoint in wanted.items():
            queue = self.queues.get(ods)
            if queue is None:
                queue = DestinationQueue(
                    ods,
                    endpoint,
                    pool=self._pool,
                    vault=self._vault,
                    push=PushClient(self._http(), self._hub_key, timeout_seconds=self.settings.timeout_seconds),
                    dead_letters=self.dead_letters,
                    settings=self.settings,
                    gate=self.gate,
                    clock=self._clock,
                    rng=self._rng,
                    on_push=self._on_push,
                )
                self.queues[ods] = queue
            queue.endpoint = endpoint
            if start_tasks:
                queue.start()
        for ods in set(self.queues) - set(wanted):  # no longer a push recipient: finish gracefully
            task = asyncio.create_task(self._stop_queue(ods))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def _stop_queue(self, ods: str) -> None:
        queue = self.queues.pop(ods, None)
        if queue is not None:
            await queue.stop(self.settings.shutdown_grace_seconds)

    async def _check_keys(self) -> None:
        if self.gate.paused and await self._vault.available():
            self.gate.resume()
            self.wake()

    async def _supervise(self) -> None:
        """The relay's own duty: follow the registry and the keys, and dead-letter what outlived the delivery
        window, every poll interval or when woken; a fault costs one pass (service/background.py)."""
        loop = asyncio.get_running_loop()
        next_sweep = loop.time()

        async def one_pass() -> None:
            nonlocal next_sweep
            await self._check_keys()
            self._sync_queues(start_tasks=True)
            if not self.gate.paused and loop.time() >= next_sweep:
                next_sweep = loop.time() + self.settings.sweep_seconds
                if await self._vault.available():  # dead letters need the KEK for their reports
                    await self.sweep_expired()
                else:
                    self.gate.pause()

        await run_forever(
            "relay-supervisor", one_pass, interval=self.settings.poll_seconds, until=self._stopping, wake=self._wakeup
        )
