"""Operations endpoints: /healthz (the process answers), /readyz (the store answers), /metrics (Prometheus)."""

from __future__ import annotations

from aiohttp import web

from service.errors import HandoverError
from service.http.context import services
from service.metrics import CONTENT_TYPE
from service.store import db


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    async with db.connection(services(request).pool) as conn:
        await conn.fetchval("SELECT 1")
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    hub = services(request)
    try:
        hub.metrics.undelivered.set(await hub.mailboxes.undelivered_count())
    except HandoverError:
        hub.metrics.undelivered.set(float("nan"))  # the store is down: say "unknown", not a stale number
    response = web.Response(body=hub.metrics.render())
    response.headers["Content-Type"] = CONTENT_TYPE
    return response
