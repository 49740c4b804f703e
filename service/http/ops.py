"""Operations endpoints: /healthz (the process answers), /readyz (the store answers), /metrics (Prometheus),
and POST /ops/reload-registry (ops staff: load an edited network registry without a restart)."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from service.auditlog.recording import record_key_changes
from service.errors import HandoverError
from service.http.auth import authenticate_staff
from service.http.context import Services, services
from service.http.registry_sync import announce_reload
from service.identity.roles import StaffRole
from service.metrics import CONTENT_TYPE, DEADLINE_KINDS
from service.store import db, episode_reads, ops_figures


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    async with db.connection(services(request).pool) as conn:
        await conn.fetchval("SELECT 1")
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    hub = services(request)
    await _refresh_operations(hub)
    await hub.metrics.housekeeping.refresh(hub.pool)
    try:
        hub.metrics.undelivered.set(await hub.mailboxes.undelivered_count())
        async with db.connection(hub.pool) as conn:
            overdue = await episode_reads.count_overdue(conn, hub.clock())
        for kind in DEADLINE_KINDS:
            hub.metrics.overdue.labels(kind).set(overdue.get(kind, 0))
    except HandoverError:
        hub.metrics.undelivered.set(float("nan"))  # the store is down: say "unknown", not a stale number
        for kind in DEADLINE_KINDS:
            hub.metrics.overdue.labels(kind).set(float("nan"))
    response = web.Response(body=hub.metrics.render())
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


async def _refresh_operations(hub: Services) -> None:
    """Read the shared figures (service/opsmetrics.py) from the database; on failure, report it down."""
    try:
        async with db.connection(hub.pool) as conn:
            figures = await ops_figures.read_figures(conn)
    except (HandoverError, asyncpg.PostgresError, OSError):
        hub.metrics.operations.refresh(None, hub.clock())
        return
    hub.metrics.operations.refresh(figures, hub.clock())  # ages on the clock that dated acceptance and signing


async def reload_registry(request: web.Request) -> web.Response:
    identity = await authenticate_staff(request, StaffRole.OPS)
    hub = services(request)
    result = hub.registry.reload(hub.settings.network_path)
    await record_key_changes(hub.pool, result, hub.registry.current, identity.user, hub.clock)
    if result.ok:
        await announce_reload(hub)  # the other processes sharing the database load the same file
    return web.json_response({"reloaded": result.ok, "detail": result.describe()}, status=200 if result.ok else 422)
