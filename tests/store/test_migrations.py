"""Versioned SQL migrations: applied once, in order, and an edited applied migration is refused."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

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


async def test_the_service_role_can_start_without_create_rights(database: str) -> None:
    """Migrations run as the owner; the service, as a member of handover_app, starts with no DDL at all."""
    conn = await asyncpg.connect(database)
    role = f"svc_{database.rsplit('_', 1)[-1][:12]}"
    try:
        if not await conn.fetchval("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"):
            pytest.skip("the test server's role may not create roles")
        await conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'svc-test-only' IN ROLE handover_app")
        parts = urlsplit(database)
        netloc = f"{role}:svc-test-only@{parts.hostname}:{parts.port or 5432}"
        dsn = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        assert await db.migrate(dsn) == []
        service = await asyncpg.connect(dsn)
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await service.execute("DELETE FROM audit_events")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await service.execute("CREATE TABLE sneaky (x int)")
        finally:
            await service.close()
    finally:
        await conn.execute(f"DROP OWNED BY {role}")
        await conn.execute(f"DROP ROLE IF EXISTS {role}")
        await conn.close()
