"""Builds the aiohttp Application: routes, middleware, and the start-up and shutdown of its resources."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import asyncpg
from aiohttp import web
from aiohttp.typedefs import Middleware

from service import ui
from service.authentication import StaffAuthenticator, TrustAuthenticator
from service.clock import Clock, utc_now
from service.config import Settings
from service.crypto.retention import PayloadRetention
from service.crypto.vault import open_vault, seal_legacy_payloads
from service.delivery.mailbox import Mailboxes
from service.delivery.relay import Relay, push_endpoints
from service.delivery.relay_settings import RelaySettings, relay_lease
from service.devclock import DemoClock, DemoClockNotAllowed
from service.devclock import middleware as demo_clock_middleware
from service.episodes.safetynet import SafetyNet
from service.episodes.tracker import Deadlines, EpisodeTracker
from service.errors import HandoverError
from service.housekeeping.duties import ForgetExpiredTokenIds, ForgetStaleSignIns, ShredExpiredPayloads
from service.housekeeping.scheduler import Housekeeping
from service.http import audit, cwt, episodes, mailbox, messaging, metadata, onboarding, ops, profiles_ui, validate
from service.http.context import SERVICES, Services
from service.http.forwarded import forwarded_middleware
from service.http.middleware import outcome_middleware
from service.http.protocol_errors import HubRunner
from service.http.registry_sync import registry_sync_context
from service.http.security_headers import install as install_security_headers
from service.identity.hubkey import HubSigningKey
from service.intake import Freshness, Intake
from service.metrics import Metrics
from service.pseudonyms import Pseudonymiser
from service.registry import RegistryHolder
from service.staff import StaffIdentityProvider
from service.store import db
from service.store.stalls import StallGuard
from service.store.startup import prepare_database
from service.terminology import load_code_system
from service.ui.error_pages import refusal_page
from service.ui.sessions import SIGN_IN_SECONDS
from service.validation import load_validator

log = logging.getLogger("handover.app")
SAFETY_NET = web.AppKey("safety_net", SafetyNet)


def build_app(settings: Settings, dsn: str, *, clock: Clock = utc_now) -> web.Application:
    """The service, connected to the database at `dsn` (migrated on start). `clock` is the domain's "now"
    (acceptance times, deadlines); credentials are always checked against the real clock. A `DemoClock`
    (service/devclock.py) is accepted only in development mode (`settings.dev_idp`), else DemoClockNotAllowed."""
    # What trusted proxies say (X-Forwarded-Proto / -For) is applied first, so every later step sees it.
    middlewares: list[Middleware] = [forwarded_middleware(settings.trusted_proxies), outcome_middleware]
    if isinstance(clock, DemoClock):
        if not settings.dev_idp:
            raise DemoClockNotAllowed("the demo clock runs only in development mode (HANDOVER_DEV_IDP=1)")
        middlewares.insert(1, demo_clock_middleware(clock))
    app = web.Application(middlewares=middlewares)
    app.cleanup_ctx.append(_resources(settings, dsn, clock))
    audit.install(app, settings)  # /audit/* routes, tree rebuild and self-check, checkpoint signer
    app.cleanup_ctx.append(registry_sync_context(dsn))  # a registry reload in one process reaches them all
    install_security_headers(app)  # nosniff, no-store, Server, HSTS over TLS, CSP on HTML: every response
    ui.install(app, settings)  # the staff pages under /ui/ (and /dev-idp/ when HANDOVER_DEV_IDP=1)
    app.router.add_post("/fhir/$process-message", messaging.process_message)
    app.router.add_post("/fhir/$canonicalize", onboarding.canonicalize)
    app.router.add_get("/fhir/metadata", metadata.metadata)
    app.router.add_post("/fhir/Bundle/$validate", validate.validate_bundle)
    profiles_ui.add_routes(app.router)
    app.router.add_get("/mailbox/{ods}/inbox", mailbox.list_inbox)
    app.router.add_get("/mailbox/{ods}/inbox/{message_id}", mailbox.fetch_message)
    app.router.add_post("/mailbox/{ods}/inbox/{message_id}/ack", mailbox.acknowledge)
    app.router.add_get("/episodes", episodes.list_episodes)
    app.router.add_get("/episodes/{episode_id}", episodes.get_episode)
    app.router.add_get("/governance/summary", episodes.governance_summary)
    app.router.add_get("/governance/cwt", cwt.governance_cwt)
    app.router.add_get("/governance/messages/{message_id}", episodes.governance_read_payload)
    app.router.add_get("/healthz", ops.healthz)
    app.router.add_get("/readyz", ops.readyz)
    app.router.add_get("/metrics", ops.metrics)
    app.router.add_post("/ops/reload-registry", ops.reload_registry)
    return app


def make_runner(app: web.Application) -> web.AppRunner:
    """The runner that serves `app`: request bodies decoded by the hub itself (service/http/body.py), no access
    log, and requests the HTTP parser refuses answered with a branded page (service/http/protocol_errors.py)."""
    return HubRunner(app, page=refusal_page, auto_decompress=False, access_log=None)


def _resources(settings: Settings, dsn: str, clock: Clock) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        await prepare_database(dsn, within_seconds=settings.database_wait_seconds)  # waits out a failover
        registry = RegistryHolder.from_file(settings.network_path)
        hub_key = HubSigningKey(settings.keys_dir, registry)  # follows the registry's active hub key on reload
        pool = await db.create_pool(dsn, max_size=settings.db_pool_max)
        freshness = Freshness.from_settings(settings)
        pseudonyms = Pseudonymiser.from_keys_dir(settings.keys_dir)
        tracker = EpisodeTracker(pseudonyms, Deadlines.from_settings(settings))
        # Push relay and retention get their own small pool: background work never starves request handling.
        background_pool = await db.create_pool(dsn, max_size=settings.background_pool_max)
        vault = await open_vault(background_pool, settings.kek_path, create_if_missing=settings.kek_file is None)
        try:
            await seal_legacy_payloads(background_pool, vault)
        except HandoverError:
            log.error("legacy plaintext payloads not sealed yet: store or keys unavailable")
        events = load_code_system("handover-event")
        stall_guard = StallGuard(settings.intake_database_timeout_seconds)
        metrics = Metrics(stall_guard)
        relay = Relay(
            background_pool,
            vault,
            hub_key,
            events.url,
            endpoints=lambda: push_endpoints(registry.current),
            settings=RelaySettings(
                timeout_seconds=settings.push_timeout_seconds,
                lease=relay_lease(settings.push_timeout_seconds),
                concurrency=settings.push_concurrency,
                poll_seconds=settings.relay_poll_seconds,
                window=timedelta(seconds=settings.delivery_window_seconds),
            ),
            clock=clock,
            on_push=metrics.operations.observe_push,
        )
        metrics.operations.circuits = relay.circuit_states
        intake = Intake(
            pool,
            registry,
            hub_key,
            events,
            vault=vault,
            on_accepted=relay.wake,
            freshness=freshness,
            episodes=tracker,
            validator=load_validator(),  # compiled at start-up: a fault in the profiles fails start-up
            clock=clock,
            stall_guard=stall_guard,  # a stalled primary costs a fast 503, not a pile-up
        )
        # Always the holder's own lookups (registry.key), never registry.current.key: they follow reloads.
        authenticator = TrustAuthenticator(pool, registry.key)
        staff = StaffAuthenticator(
            StaffIdentityProvider.load(settings.staff_jwks_path, settings.keys_dir, settings.staff_issuer), pool
        )
        mailboxes = Mailboxes(pool, vault, clock)
        app[SERVICES] = Services(
            settings, pool, registry, intake, mailboxes, metrics, authenticator, staff, pseudonyms, clock
        )
        safety_net = SafetyNet(
            pool, hub_key, intake.events.url, clock, vault=vault, clock_warning_days=settings.clock_warning_days
        )
        app[SAFETY_NET] = safety_net
        sweeper = asyncio.create_task(safety_net.run(settings.safety_net_seconds), name="safety-net")
        if isinstance(clock, DemoClock):  # development: the demo moves time, so it fires the timed duties too
            clock.add_duty(safety_net.sweep_all)
            clock.add_duty(relay.sweep_expired)
        await relay.start()
        stop_housekeeping = asyncio.Event()
        housekeeping = asyncio.create_task(
            _housekeeping(settings, background_pool, clock).run(stop_housekeeping), name="housekeeping"
        )
        log.info("service ready", extra={"count": len(registry.current.participants)})
        try:
            yield
        finally:
            stop_housekeeping.set()
            await relay.stop()  # pushes in flight finish (bounded by the grace period) or their jobs are released
            await housekeeping
            await background_pool.close()
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await pool.close()

    return context


def _housekeeping(settings: Settings, pool: asyncpg.Pool, clock: Clock) -> Housekeeping:
    """Every duty that enforces a table's lifetime (docs/operations.md, "Table lifetimes")."""
    return Housekeeping(
        pool,
        [
            ForgetExpiredTokenIds(timedelta(seconds=settings.housekeeping_seconds)),
            ForgetStaleSignIns(
                timedelta(seconds=settings.housekeeping_seconds),
                idle=timedelta(minutes=settings.ui_idle_minutes),
                sign_in=timedelta(seconds=SIGN_IN_SECONDS),
                lifetime=timedelta(hours=settings.ui_max_session_hours),
            ),
            ShredExpiredPayloads(
                PayloadRetention(pool, settings.payload_retention, clock=clock),
                timedelta(seconds=settings.retention_sweep_seconds),
            ),
        ],
    )
