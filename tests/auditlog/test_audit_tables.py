"""T1 and the checkpoint table: the application role may only read and insert audit rows; the owner is
stopped by triggers; checkpoints only grow and never repeat a size."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg
import pytest

from tests.auditlog.audit_fixtures import T0, append_events, sign_checkpoint
from tests.support.hub import Network

TABLES = ("audit_events", "audit_checkpoints")
STATEMENTS = ("UPDATE {table} SET {column} = {column}", "DELETE FROM {table}", "TRUNCATE {table}")
COLUMN = {"audit_events": "actor", "audit_checkpoints": "note"}


@asynccontextmanager
async def connected(dsn: str, role: str | None = None) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(dsn)
    try:
        if role is not None:
            await conn.execute(f"SET ROLE {role}")
        yield conn
    finally:
        await conn.close()


async def test_t1_the_app_role_may_read_and_insert_but_not_change_audit_rows(database: str, network: Network) -> None:
    await append_events(database, 2)
    await sign_checkpoint(database, network)
    async with connected(database, "handover_app") as app:
        assert await app.fetchval("SELECT count(*) FROM audit_events") == 2
        assert await app.fetchval("SELECT count(*) FROM audit_checkpoints") == 1
        await app.execute(
            "INSERT INTO audit_events (seq, event_type, outcome, actor, recorded_at, leaf, leaf_hash)"
            " VALUES (2, 't', 'o', 'a', now(), '\\x00', $1)",
            hashlib.sha256(b"\x00\x00").digest(),
        )
        for table in TABLES:
            for statement in STATEMENTS:
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                    await app.execute(statement.format(table=table, column=COLUMN[table]))
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="must be owner"):
                await app.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    async with connected(database) as owner:
        assert await owner.fetchval("SELECT count(*) FROM audit_events") == 3


SERVICE_STATEMENTS = (
    "SELECT count(*) FROM messages",
    "UPDATE messages SET event = event WHERE false",
    "DELETE FROM idempotency_keys WHERE false",
    "UPDATE deliveries SET attempts = attempts + 1 WHERE false",
    "INSERT INTO used_token_ids (issuer, jti, expires_at) VALUES ('RM1', 'x', now())",
    "DELETE FROM used_token_ids WHERE expires_at < now() + interval '1 day'",
)


# What each statement's command tag must say: it ran, and the insert and the clean-up touched their one row.
SERVICE_TAGS = ("SELECT 1", "UPDATE 0", "DELETE 0", "UPDATE 0", "INSERT 0 1", "DELETE 1")


async def test_t1_the_app_role_keeps_what_the_service_needs_elsewhere(database: str) -> None:
    async with connected(database, "handover_app") as app:
        assert await app.fetchval("SELECT current_user") == "handover_app"
        tags = [await app.execute(statement) for statement in SERVICE_STATEMENTS]
    assert tags == list(SERVICE_TAGS)


async def test_t1_the_owner_is_refused_by_the_triggers(database: str, network: Network) -> None:
    await append_events(database, 2)
    await sign_checkpoint(database, network)
    async with connected(database) as owner:
        for table in TABLES:
            for statement in STATEMENTS:
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                    await owner.execute(statement.format(table=table, column=COLUMN[table]))
        assert await owner.fetchval("SELECT count(*) FROM audit_events") == 2
        assert await owner.fetchval("SELECT count(*) FROM audit_checkpoints") == 1


async def test_checkpoints_only_grow_in_size_and_time_and_never_run_past_the_log(
    database: str, network: Network
) -> None:
    await append_events(database, 3)
    stored = await sign_checkpoint(database, network, clock=lambda: T0)
    insert = (
        "INSERT INTO audit_checkpoints (tree_size, root_hash, signed_at, key_id, note) VALUES ($1, $2, $3, 'k', 'n')"
    )
    async with connected(database) as owner:
        with pytest.raises(asyncpg.UniqueViolationError, match="already checkpointed"):
            await owner.execute(insert, stored.tree_size, stored.root_hash, T0)
        with pytest.raises(asyncpg.UniqueViolationError, match="already checkpointed"):
            await owner.execute(insert, 2, stored.root_hash, T0)
        with pytest.raises(asyncpg.CheckViolationError, match="the log has 3 entries"):
            await owner.execute(insert, 4, stored.root_hash, T0)
    await append_events(database, 1, first=3)
    async with connected(database) as owner:
        with pytest.raises(asyncpg.CheckViolationError, match="before the previous one"):
            await owner.execute(insert, 4, stored.root_hash, T0 - timedelta(seconds=1))
        await owner.execute(insert, 4, stored.root_hash, T0)
