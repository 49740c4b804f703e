"""Connection pool, transactions, and the versioned SQL migrations in `migrations/`.

Connection failures surface as `HandoverError(Code.UNAVAILABLE)` so callers answer 503 with Retry-After
instead of a 500; everything else (constraint violations, bugs) propagates unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from importlib import resources
from typing import Any

import asyncpg

from service.errors import Code, HandoverError
from service.store.stalls import StallGuard

log = logging.getLogger("handover.store")
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_MIGRATION_LOCK_KEY = 0x68616E646F766572  # "handover": one migrator at a time across processes
RETRY_AFTER_SECONDS = 5
ACQUIRE_TIMEOUT_SECONDS = 5.0

# Errors that mean "the database is not there right now", not "the request is wrong".
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.DiskFullError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,
    # A pooled connection whose server side was terminated while idle is left mid-protocol by asyncpg.
    asyncpg.exceptions.InternalClientError,
)


def unavailable() -> HandoverError:
    return HandoverError(
        Code.UNAVAILABLE,
        "The message store is temporarily unavailable; nothing was accepted. Retry with the same X-Request-ID.",
        retry_after=RETRY_AFTER_SECONDS,
    )


_MOVING: dict[str, Callable[[], str]] = {}


def follow_moves(dsn: str, current: Callable[[], str]) -> None:
    """From now on, every new connection to `dsn` goes where `current()` says: the embedded cluster may come
    back on another port (its old one taken), and a running hub must reach it there without a restart."""
    _MOVING[dsn] = current


def resolve(dsn: str) -> str:
    """Where `dsn` is now (itself, unless `follow_moves` was told otherwise)."""
    current = _MOVING.get(dsn)
    return current() if current is not None else dsn


async def connect(dsn: str, **options: Any) -> asyncpg.Connection:
    """`asyncpg.connect` to wherever `dsn` is now."""
    return await asyncpg.connect(resolve(dsn), **options)


class HubConnection(asyncpg.Connection):  # type: ignore[misc]  # asyncpg has no type hints
    """A pooled connection that may skip the pool's reset on release (a round trip: advisory unlock, CLOSE ALL,
    UNLISTEN, RESET ALL) once, after a use known to leave no session state: `endable_transaction`'s, marked by
    `left_clean`. Anything else (a duty's session lock, a cursor) is reset as usual."""

    _left_clean = False

    def left_clean(self) -> None:
        self._left_clean = True

    def get_reset_query(self) -> str:
        clean, self._left_clean = self._left_clean, False
        if clean and not self.is_in_transaction():
            return ""
        return str(super().get_reset_query())

    async def reset(self, *, timeout: float | None = None) -> None:  # noqa: ASYNC109 - asyncpg's signature
        """The pool's reset on release; bounded by the acquire's timeout (a timer armed and cancelled) only when
        something goes to the server: after a clean use nothing does, so no timer is armed."""
        if self._left_clean and not self.is_in_transaction():
            timeout = None
        await super().reset(timeout=timeout)


async def create_pool(dsn: str, *, max_size: int = 20) -> asyncpg.Pool:
    """A pool that reconnects by itself, to wherever the database is now; it may be created while it is down."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=0,
        max_size=max_size,
        command_timeout=30,
        max_inactive_connection_lifetime=60,
        connect=connect,
        connection_class=HubConnection,
    )
    assert pool is not None
    return pool


@asynccontextmanager
async def connection(pool: asyncpg.Pool, *, guard: StallGuard | None = None) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection; an unreachable database raises `unavailable()`. With `guard`, the whole use
    (acquiring included) is bounded by `guard.seconds`: a stalled database is an `unavailable()` too."""
    acquire_timeout = ACQUIRE_TIMEOUT_SECONDS if guard is None else min(ACQUIRE_TIMEOUT_SECONDS, guard.seconds)
    try:
        conn = await pool.acquire(timeout=acquire_timeout)
    except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:  # any failure to connect: not the caller's fault
        if guard is not None and isinstance(exc, TimeoutError):  # no connection within the bound: a stall too
            await guard.stalled(pool)
        else:
            log.warning("store unavailable: cannot connect", extra={"code": type(exc).__name__})
        raise unavailable() from exc
    watch = guard.watch(conn) if guard is not None else None
    try:
        yield conn
    except CONNECTION_ERRORS as exc:
        if watch is not None and watch.expired and guard is not None:
            await guard.stalled(pool)
        else:
            log.warning("store unavailable", extra={"code": type(exc).__name__})  # e.g. DiskFull, AdminShutdown
        with contextlib.suppress(asyncpg.InterfaceError):  # already detached from the pool if it closed itself
            conn.terminate()  # never hand a broken connection to the next caller
        raise unavailable() from exc
    else:
        if guard is not None:
            guard.answered()
    finally:
        if watch is not None:
            watch.done()
        # A connection that died with the operation (or while being reset) is dropped by the pool; the
        # caller's outcome (503, or a committed result) stands instead of turning into a 500.
        with suppress(*CONNECTION_ERRORS):
            await pool.release(conn)


@asynccontextmanager
async def transaction(pool: asyncpg.Pool, *, guard: StallGuard | None = None) -> AsyncIterator[asyncpg.Connection]:
    """One business action: everything inside commits together or not at all (within `guard`'s bound)."""
    async with connection(pool, guard=guard) as conn, conn.transaction():
        yield conn


class EndableTransaction:
    """An open transaction whose last write and COMMIT may travel in one round trip (`commit_after`)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.ended = False

    async def commit_after(self, statement: str) -> None:
        """Run `statement`, then COMMIT, in one simple-protocol query: one wait for the database instead of two.
        The simple protocol takes no parameters, so `statement` must be built from checked literals only."""
        await self.conn.execute(f"{statement};\nCOMMIT")
        self.ended = True


@asynccontextmanager
async def endable_transaction(
    pool: asyncpg.Pool, *, guard: StallGuard | None = None
) -> AsyncIterator[EndableTransaction]:
    """`transaction`, for a hot path that holds a lock until COMMIT: the caller may end it with its last write
    (`EndableTransaction.commit_after`); if it does not, it commits when the block ends, and any exception
    rolls it back. After a commit the pool skips its reset round trip (`HubConnection`), so nothing inside may
    change session state (SET, LISTEN, session advisory locks, cursors kept open): transaction-scoped only.
    With `guard`, all of it is bounded by `guard.seconds` (`connection`)."""
    async with connection(pool, guard=guard) as conn:
        await conn.execute("BEGIN")
        tx = EndableTransaction(conn)
        try:
            yield tx
        except BaseException:
            if conn.is_in_transaction():  # a failed commit_after has already ended it
                with suppress(*CONNECTION_ERRORS, asyncpg.PostgresError):
                    await conn.execute("ROLLBACK")
            raise
        if not tx.ended:
            await conn.execute("COMMIT")
        left_clean = getattr(conn, "left_clean", None)  # a pool of plain connections resets as usual
        if left_clean is not None:
            left_clean()  # only statements inside one transaction ran: nothing to reset


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


class SchemaRefusedError(RuntimeError):
    """The database's schema is not one this hub may run on; the message tells the operator what to do."""


class MigrationDriftError(SchemaRefusedError):
    """An applied migration's text has changed since: the schema may not be what the code expects."""


class SchemaTooNewError(SchemaRefusedError):
    """The database holds migrations this hub does not know: a newer release migrated it. Migrations are
    additive for one release (docs/operations.md, "Upgrades"), so hubs of the previous release already running
    keep serving, but a hub never *starts* on a schema it cannot vouch for."""


def bundled_migrations() -> list[Migration]:
    """The migrations shipped in service/store/migrations, in version order."""
    found = []
    for entry in resources.files("service.store").joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version: {versions}")
    return found


async def migrate(dsn: str, *, connect_timeout: float = 60) -> list[Migration]:
    """Apply every bundled migration not yet applied, each in its own transaction; returns those applied.

    Safe to run from several processes at once: a session advisory lock admits one migrator at a time.
    Refuses (`SchemaTooNewError`) a database holding a migration this hub does not know.
    """
    conn = await connect(dsn, timeout=connect_timeout)
    try:
        if await _nothing_pending(conn):  # refuses a newer schema first
            return []  # no DDL at all, so a service role without CREATE rights starts fine
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_KEY)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                " sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row["version"]: row["sha256"] for row in await conn.fetch("SELECT * FROM schema_migrations")}
            applied = []
            for migration in bundled_migrations():
                if migration.version in done:
                    if done[migration.version] != migration.sha256:
                        raise MigrationDriftError(
                            f"migration {migration.version:04d}_{migration.name} has changed since it was applied; "
                            "add a new migration instead of editing an applied one"
                        )
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        migration.sha256,
                    )
                applied.append(migration)
            return applied
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK_KEY)
    finally:
        await conn.close()


async def _nothing_pending(conn: asyncpg.Connection) -> bool:
    """True when every bundled migration is applied unchanged (drift is left for `migrate` to report);
    `SchemaTooNewError` when the database holds a migration this hub does not know."""
    if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
        return False
    rows = await conn.fetch("SELECT version, name, sha256, applied_at FROM schema_migrations ORDER BY version")
    bundled = bundled_migrations()
    refuse_unknown(rows, bundled)
    done = {row["version"]: row["sha256"] for row in rows}
    return all(done.get(m.version) == m.sha256 for m in bundled)


def refuse_unknown(applied: list[asyncpg.Record], bundled: list[Migration]) -> None:
    """`SchemaTooNewError` naming the first applied migration that is not among `bundled`."""
    known = {m.version for m in bundled}
    unknown = [row for row in applied if row["version"] not in known]
    if not unknown:
        return
    first = unknown[0]
    newest = max(known, default=0)
    raise SchemaTooNewError(
        f"This database's schema is newer than this hub: it has migration {first['version']:04d}_{first['name']}"
        f" (applied {first['applied_at']:%-d %B %Y}), and this hub knows migrations up to {newest:04d} only. "
        "Start a hub of the release that migrated it (or a later one); this hub will not run on a schema it "
        "does not know."
    )


async def wait_until_reachable(dsn: str, *, within_seconds: float = 30.0) -> None:
    """Block until the database accepts a connection, or raise the last error after `within_seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_seconds
    while True:
        try:
            conn = await connect(dsn, timeout=5)
        except (*CONNECTION_ERRORS, asyncpg.exceptions.InvalidCatalogNameError):
            if loop.time() >= deadline:
                raise
            await asyncio.sleep(0.2)
        else:
            await conn.close()
            return
