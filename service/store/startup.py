"""Start-up's hold on the database: wait (bounded) for a writable primary, then migrate.

A hub started while its database has no primary (a failover in progress, the cluster still booting) waits for one
rather than dying, so an orchestrator restarting hubs during a failover does not get a crash loop: it says what it
is waiting for every few seconds, and after `within_seconds` gives up with `NoPrimaryError`, whose message is
all an operator needs (no traceback). A schema this hub does not know is refused at once (`SchemaRefusedError`).
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import asyncpg

from service.store import db

log = logging.getLogger("handover.store")
RETRY_SECONDS = 0.5
SAY_EVERY_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 10.0


class NoPrimaryError(RuntimeError):
    """No writable primary answered within the start-up bound."""


def hosts_of(dsn: str) -> str:
    """The host:port list of `dsn`, without credentials (for logs and messages)."""
    netloc = urlsplit(dsn).netloc
    return netloc.rpartition("@")[2] or "the local socket"


async def prepare_database(
    dsn: str, *, within_seconds: float, say_every: float = SAY_EVERY_SECONDS
) -> list[db.Migration]:
    """Migrate the database at `dsn` as soon as a writable primary answers; returns the migrations applied."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    next_say = started
    while True:
        try:
            return await db.migrate(dsn, connect_timeout=CONNECT_TIMEOUT_SECONDS)
        except (*db.CONNECTION_ERRORS, asyncpg.exceptions.InvalidCatalogNameError) as exc:
            waited = loop.time() - started
            reason = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
            if waited >= within_seconds:
                raise NoPrimaryError(
                    f"No writable PostgreSQL primary at {hosts_of(dsn)} after {waited:.0f} s "
                    f"(HANDOVER_DATABASE_WAIT_SECONDS={within_seconds:g}); last answer: {reason}. "
                    "Check the database cluster (patronictl list) and the DSN in HANDOVER_DATABASE_URL."
                ) from None
            if loop.time() >= next_say:
                log.warning(
                    "waiting for a writable primary (%.0f s of %g s): %s",
                    waited,
                    within_seconds,
                    reason,
                    extra={"dsn_host": hosts_of(dsn), "code": type(exc).__name__},
                )
                next_say = loop.time() + say_every
            await asyncio.sleep(RETRY_SECONDS)
