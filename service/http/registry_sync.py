"""One registry in every hub process: a reload made in one process (`POST /ops/reload-registry`) is announced
on PostgreSQL, and every other process sharing the database (the workers of `handover serve --workers N`, and
replicas on other machines) reloads the registry file itself. Only the process that made the change audits
it; the others log what they loaded. A process reloads whenever it starts listening (at start-up, and after
its notification connection was lost), so an announcement made before it listened is not missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from service.http.context import SERVICES, Services
from service.store import db
from service.store.notifications import Listener, announce

log = logging.getLogger("handover.registry")
CHANNEL = "handover_registry_reloaded"
_PROCESS = uuid.uuid4().hex  # who announced: a process ignores its own announcements
LISTENER = web.AppKey("registry_listener", Listener)


async def announce_reload(hub: Services) -> None:
    """Tell every other process to reload the registry file (best effort: the store may be down)."""
    async with db.transaction(hub.pool) as conn:
        await announce(conn, CHANNEL, _PROCESS)


def registry_sync_context(dsn: str) -> Callable[[web.Application], AsyncIterator[None]]:
    """For `app.cleanup_ctx`, after the context that sets SERVICES."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        hub = app[SERVICES]

        async def reload(origin: str) -> None:
            if origin == _PROCESS:
                return
            result = hub.registry.reload(hub.settings.network_path)
            log.log(logging.INFO if result.ok else logging.ERROR, "registry reloaded on notice: " + result.describe())

        listener = Listener(dsn, CHANNEL, reload, on_listening=lambda: reload("listening"))
        app[LISTENER] = listener
        listener.start()
        with contextlib.suppress(TimeoutError):  # listening (and reloaded) before the first request, unless the
            await asyncio.wait_for(listener.listening.wait(), timeout=10)  # store is down: then it catches up later
        try:
            yield
        finally:
            await listener.stop()

    return context
