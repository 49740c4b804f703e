"""Versioned SQL migrations: applied once, in order, and an edited applied migration is refused."""

from __future__ import annotations

import asyncpg
import pytest

from service.store import db


async def test_migrate_twice_applies_nothing_the_second_time(database: str) -> None:
    assert await db.migrate(database) == []  # the per-test database is cloned from a migrated template
    conn = await asyncpg.connect(database)
    try:
        rows = await conn.fetch("SELECT version, sha256 FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()
    assert [(r["version"], r["sha256"]) for r in rows] == [(m.version, m.sha256) for m in db.bundled_migrations()]


async def test_an_applied_migration_that_changed_is_refused(database: str) -> None:
    conn = await asyncpg.connect(database)
    try:
        await conn.execute("UPDATE schema_migrations SET sha256 = 'edited' WHERE version = 1")
    finally:
        await conn.close()
    with pytest.raises(db.MigrationDriftError, match="0001"):
        await db.migrate(database)


async def test_audit_events_refuse_update_delete_and_truncate_even_for_the_owner(database: str) -> None:
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(
            "INSERT INTO audit_events (seq, event_type, outcome, actor, recorded_at, leaf, leaf_hash)"
            " VALUES (0, 't', 'o', 'a', now(), '\\x00', decode(repeat('00', 32), 'hex'))"
        )
        for statement in ("UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events", "TRUNCATE audit_events"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(statement)
        assert await conn.fetchval("SELECT count(*) FROM audit_events") == 1
    finally:
        await conn.close()
