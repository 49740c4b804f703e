"""Versioned SQL migrations: applied once, in order, and an edited applied migration is refused."""

from __future__ import annotations

from datetime import UTC, date, datetime
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


async def test_episodes_opened_before_0013_get_the_ipt_date_the_earlier_rule_gave_and_no_later_one(
    database: str,
) -> None:
    """Migration 0015: an upgraded hub must not count every earlier cancer episode as not yet transferred (a burst of
    day-38 alerts), nor date a referral opened since 0013 that is still incomplete."""
    conn = await asyncpg.connect(database)
    try:
        await conn.execute("DELETE FROM schema_migrations WHERE version = 15")
        await conn.execute("UPDATE schema_migrations SET applied_at = '2026-10-01T12:00:00Z' WHERE version = 13")
        for name, opened in (
            ("before", datetime(2026, 9, 30, 23, 30, tzinfo=UTC)),
            ("since", datetime(2026, 10, 2, 9, tzinfo=UTC)),
        ):
            await conn.execute(
                "INSERT INTO episodes (id, nhs_number_hmac, referral_identifier, referrer_ods, centre_ods, state,"
                " snapshot, pathway_start, opened_at, updated_at)"
                " VALUES (gen_random_uuid(), repeat('a', 63) || $1, $2, 'RM1', 'RGT', 'referred', '{}', '2026-09-01',"
                " $3, $3)",
                "0" if name == "before" else "1",
                name,
                opened,
            )
    finally:
        await conn.close()
    assert [m.version for m in await db.migrate(database)] == [15]
    conn = await asyncpg.connect(database)
    try:
        dates = dict(await conn.fetch("SELECT referral_identifier, ipt_received_date FROM episodes"))
    finally:
        await conn.close()
    assert dates == {"before": date(2026, 10, 1), "since": None}  # 23:30 UTC on 30 September is 1 October in London
