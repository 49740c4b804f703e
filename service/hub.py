"""One place that wires the hub, as synapse's `HomeServer` does: `open_hub` builds the registry and the hub key, the
database pools, the payload vault, the clock, the hub's own-message sender (`HubMail`), and on first use the intake,
the push relay and the safety net, each once per process. The HTTP app (service/app.py), the MESH bridge
(service/meshbridge/bridge.py) and the commands (service/cli/) take what they need from it rather than building
their own.

A serving process has two pools: request handling's (`pool`) and background work's (`background_pool`: the relay,
the vault, retention), so background work never starves requests. A process with no requests to serve (the MESH
bridge) opens one pool and uses it for both.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property

import asyncpg

from service.clock import Clock, utc_now
from service.config import Settings
from service.crypto.vault import PayloadVault, open_vault
from service.delivery.hubmail import HubMail
from service.delivery.relay import Relay, push_endpoints
from service.delivery.relay_settings import RelaySettings, relay_lease
from service.delivery.safetynet import SafetyNet
from service.episodes.tracker import Deadlines, EpisodeTracker
from service.identity.hubkey import HubSigningKey
from service.identity.registry import RegistryHolder
from service.intake import Freshness, Intake
from service.metrics import Metrics
from service.pseudonyms import Pseudonymiser
from service.store import db
from service.store.stalls import StallGuard
from service.store.startup import prepare_database
from service.terminology import CodeSystem, load_code_system
from service.validation import load_validator

log = logging.getLogger("handover.hub")


@dataclass
class Hub:
    """One hub process's parts. The fields are built by `open_hub`; the properties are built on first use, once."""

    settings: Settings
    registry: RegistryHolder
    hub_key: HubSigningKey  # follows the registry's active hub key on reload
    pool: asyncpg.Pool
    background_pool: asyncpg.Pool
    vault: PayloadVault
    clock: Clock = utc_now
    stall_guard: StallGuard | None = None  # bounds the intake's database work; its stalls are in the metrics
    events: CodeSystem = field(default_factory=lambda: load_code_system("handover-event"))

    @cached_property
    def metrics(self) -> Metrics:
        return Metrics(self.stall_guard)

    @cached_property
    def mail(self) -> HubMail:
        """The one sender of the hub's own messages (alerts, non-delivery reports)."""
        return HubMail(self.vault, self.hub_key, self.events.url)

    @cached_property
    def pseudonyms(self) -> Pseudonymiser:
        return Pseudonymiser.from_keys_dir(self.settings.keys_dir)

    @cached_property
    def relay(self) -> Relay:
        """The push relay (not started: the serving process starts and stops it), on the background pool."""
        settings = self.settings
        relay = Relay(
            self.background_pool,
            self.mail,
            endpoints=lambda: push_endpoints(self.registry.current),
            settings=RelaySettings(
                timeout_seconds=settings.push_timeout_seconds,
                lease=relay_lease(settings.push_timeout_seconds),
                concurrency=settings.push_concurrency,
                poll_seconds=settings.relay_poll_seconds,
                window=self.delivery_window,
            ),
            clock=self.clock,
            on_push=self.metrics.operations.observe_push,
        )
        self.metrics.operations.circuits = relay.circuit_states
        return relay

    @cached_property
    def intake(self) -> Intake:
        """The intake, its profiles compiled now (a fault in them fails start-up). An acceptance wakes this
        process's relay when it has one."""
        return Intake(
            self.pool,
            self.registry,
            self.hub_key,
            self.events,
            vault=self.vault,
            on_accepted=self._wake_relay,
            freshness=Freshness.from_settings(self.settings),
            episodes=EpisodeTracker(self.pseudonyms, Deadlines.from_settings(self.settings)),
            validator=load_validator(),
            clock=self.clock,
            stall_guard=self.stall_guard,  # a stalled primary costs a fast 503, not a pile-up
        )

    @cached_property
    def safety_net(self) -> SafetyNet:
        return SafetyNet(self.pool, self.mail, self.clock, clock_warning_days=self.settings.clock_warning_days)

    @property
    def delivery_window(self) -> timedelta:
        """How long a delivery is tried before it is dead-lettered (HANDOVER_DELIVERY_WINDOW_SECONDS)."""
        return timedelta(seconds=self.settings.delivery_window_seconds)

    def _wake_relay(self, recipient_ods: str) -> None:
        if "relay" in self.__dict__:  # built (and so started) in this process: push now rather than at its poll
            self.relay.wake(recipient_ods)


@asynccontextmanager
async def open_hub(
    settings: Settings,
    dsn: str,
    *,
    clock: Clock = utc_now,
    pool_max: int | None = None,
    background_pool_max: int | None = None,
    wait_for_primary: bool = False,
    stall_guard: StallGuard | None = None,
) -> AsyncIterator[Hub]:
    """The hub on the database at `dsn` (migrated first); its pools closed on exit. `pool_max` sizes the request
    pool (default HANDOVER_DB_POOL_MAX); with `background_pool_max` set, background work gets a second pool of
    that size, else it shares the first. `wait_for_primary` waits up to HANDOVER_DATABASE_WAIT_SECONDS for a
    writable primary before migrating (a serving process, through a failover); `stall_guard` bounds the intake's
    database work."""
    if wait_for_primary:
        await prepare_database(dsn, within_seconds=settings.database_wait_seconds)
    else:
        await db.migrate(dsn)
    registry = RegistryHolder.from_file(settings.network_path)
    hub_key = HubSigningKey(settings.keys_dir, registry)
    pool = await db.create_pool(dsn, max_size=pool_max or settings.db_pool_max)
    background_pool = pool
    try:
        if background_pool_max is not None:
            background_pool = await db.create_pool(dsn, max_size=background_pool_max)
        vault = await open_vault(background_pool, settings.kek_path, create_if_missing=settings.kek_file is None)
        yield Hub(settings, registry, hub_key, pool, background_pool, vault, clock, stall_guard)
    finally:
        if background_pool is not pool:
            await background_pool.close()
        await pool.close()
