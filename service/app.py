"""Builds the aiohttp Application: routes, middleware, and the start-up and shutdown of its resources."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

from aiohttp import web

from service.authentication import StaffAuthenticator, TrustAuthenticator
from service.config import Settings
from service.delivery.mailbox import Mailboxes
from service.http import mailbox, messaging, metadata, onboarding, ops
from service.http.context import SERVICES, Services
from service.http.middleware import outcome_middleware
from service.intake import Freshness, Intake
from service.keystore import load_private_jwk
from service.metrics import Metrics
from service.registry import RegistryHolder
from service.staff import StaffIdentityProvider
from service.store import db
from service.terminology import load_code_system

log = logging.getLogger("handover.app")


def build_app(settings: Settings, dsn: str) -> web.Application:
    """The service, connected to the database at `dsn` (migrated on start)."""
    app = web.Application(middlewares=[outcome_middleware])
    app.cleanup_ctx.append(_resources(settings, dsn))
    app.router.add_post("/fhir/$process-message", messaging.process_message)
    app.router.add_post("/fhir/$canonicalize", onboarding.canonicalize)
    app.router.add_get("/fhir/metadata", metadata.metadata)
    app.router.add_get("/mailbox/{ods}/inbox", mailbox.list_inbox)
    app.router.add_get("/mailbox/{ods}/inbox/{message_id}", mailbox.fetch_message)
    app.router.add_post("/mailbox/{ods}/inbox/{message_id}/ack", mailbox.acknowledge)
    app.router.add_get("/healthz", ops.healthz)
    app.router.add_get("/readyz", ops.readyz)
    app.router.add_get("/metrics", ops.metrics)
    app.router.add_post("/ops/reload-registry", ops.reload_registry)
    return app


def _resources(settings: Settings, dsn: str) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        await db.migrate(dsn)
        registry = RegistryHolder.from_file(settings.network_path)
        hub_key = load_private_jwk(settings.keys_dir, "hub")
        pool = await db.create_pool(dsn, max_size=settings.db_pool_max)
        freshness = Freshness(
            max_age=timedelta(seconds=settings.max_message_age_seconds),
            max_ahead=timedelta(seconds=settings.max_clock_skew_seconds),
        )
        intake = Intake(pool, registry, hub_key, load_code_system("handover-event"), freshness=freshness)
        # Always the holder's own lookups (registry.key), never registry.current.key: they follow reloads.
        authenticator = TrustAuthenticator(pool, registry.key)
        staff = StaffAuthenticator(
            StaffIdentityProvider.load(settings.staff_jwks_path, settings.keys_dir, settings.staff_issuer)
        )
        app[SERVICES] = Services(settings, pool, registry, intake, Mailboxes(pool), Metrics(), authenticator, staff)
        log.info("service ready", extra={"count": len(registry.current.participants)})
        try:
            yield
        finally:
            await pool.close()

    return context
