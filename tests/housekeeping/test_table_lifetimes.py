"""Housekeeping with a real hub on a real PostgreSQL: with short lifetimes, rows past theirs go away on schedule,
/metrics shows each duty's removals and last run, a failing duty is reported and recovers, and two hubs on one
database never run a duty at the same time."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
import uuid
from datetime import timedelta

import asyncpg

from service.crypto.retention import RetentionPolicy
from service.store.housekeeping import duty_lock_key
from tests.support.hub import Network, RunningHub, running_hub
from tests.support.messages import referral


async def _expire_token_ids(dsn: str, count: int, *, issuer: str = "RM1") -> None:
    """`count` ids of tokens that expired an hour ago, as a busy hub leaves behind."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO used_token_ids (issuer, jti, expires_at)"
            " SELECT $1, 'old-' || $3::text || '-' || n, now() - interval '1 hour' FROM generate_series(1, $2) n",
            issuer,
            count,
            str(time.monotonic_ns()),
        )
    finally:
        await conn.close()


async def _count(dsn: str, sql: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def _wait_for(dsn: str, sql: str, expected: int, *, within: float = 20.0) -> float:
    """Seconds until `sql` counts `expected`; fails the test if it never does."""
    started = time.monotonic()
    while (found := await _count(dsn, sql)) != expected:
        assert time.monotonic() - started < within, f"{sql!r} still counts {found}, not {expected}"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def _metrics(hub: RunningHub) -> dict[str, float]:
    async with hub.session.get(f"{hub.base_url}/metrics") as resp:
        text = await resp.text()
    return {
        match.group(1): float(match.group(2))
        for match in re.finditer(r"^(handover_housekeeping_[a-z_]+\{[^}]*\}) (\S+)$", text, re.MULTILINE)
    }


EXPIRED = "SELECT count(*) FROM used_token_ids WHERE expires_at < now() - interval '10 minutes'"


async def test_expired_token_ids_go_away_on_schedule_and_metrics_show_it(network: Network, database: str) -> None:
    async with running_hub(network, database, housekeeping_seconds=0.5) as hub:
        signed = hub.trust("RM1").sign(referral())
        assert (await hub.trust("RM1").send(signed)).accepted  # a live token id: must stay
        await _expire_token_ids(database, 12_000)  # more than two batches
        await _wait_for(database, EXPIRED, 0)
        assert await _count(database, "SELECT count(*) FROM used_token_ids") >= 1  # the unexpired one stays
        figures = await _metrics(hub)
        duty = '{duty="used-token-ids"}'
        assert figures[f"handover_housekeeping_rows_removed_total{duty}"] == 12_000
        assert figures[f"handover_housekeeping_last_run_success{duty}"] == 1
        assert time.time() - figures[f"handover_housekeeping_last_run_timestamp_seconds{duty}"] < 5
        # And again at the next intervals: the duty keeps running, it did not run once at start-up.
        await _expire_token_ids(database, 300)
        await _wait_for(database, EXPIRED, 0)
        await asyncio.sleep(1.2)
        later = await _metrics(hub)
        assert later[f"handover_housekeeping_rows_removed_total{duty}"] == 12_300
        assert later[f"handover_housekeeping_runs_total{duty}"] > figures[f"handover_housekeeping_runs_total{duty}"]


async def test_a_failing_duty_is_reported_on_metrics_and_recovers(network: Network, database: str) -> None:
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(
            "CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'no deletes today'; END; $$;"
            " CREATE TRIGGER refuse_delete BEFORE DELETE ON used_token_ids"
            " FOR EACH STATEMENT EXECUTE FUNCTION refuse_delete()"
        )
        await _expire_token_ids(database, 50)
        async with running_hub(network, database, housekeeping_seconds=0.3) as hub:
            duty = '{duty="used-token-ids"}'
            started = time.monotonic()
            while (await _metrics(hub)).get(f"handover_housekeeping_failures_total{duty}", 0) < 2:
                assert time.monotonic() - started < 20, "the failing duty was never reported"
                await asyncio.sleep(0.2)
            figures = await _metrics(hub)
            assert figures[f"handover_housekeeping_last_run_success{duty}"] == 0
            assert await _count(database, EXPIRED) == 50
            await conn.execute("DROP TRIGGER refuse_delete ON used_token_ids")
            await _wait_for(database, EXPIRED, 0)
            await asyncio.sleep(0.5)
            figures = await _metrics(hub)
            assert figures[f"handover_housekeeping_last_run_success{duty}"] == 1
            assert figures[f"handover_housekeeping_rows_removed_total{duty}"] == 50
    finally:
        await conn.close()


async def test_payloads_past_retention_are_shredded_on_schedule_and_audited(network: Network, database: str) -> None:
    async with running_hub(
        network, database, payload_retention=RetentionPolicy.parse("2s"), retention_sweep_seconds=0.5
    ) as hub:
        centre = hub.trust("RGT")
        result = await hub.trust("RM1").send(hub.trust("RM1").sign(referral()))
        assert result.accepted
        message_id = result.body["entry"][1]["resource"]["parameter"][0]["valueString"]
        await asyncio.sleep(3)  # undelivered: kept whatever its age
        assert await _count(database, "SELECT count(*) FROM data_keys") == 1
        await centre.acknowledge(message_id)
        waited = await _wait_for(database, "SELECT count(*) FROM data_keys", 0)
        assert waited >= 1.5  # not before its retention after delivery
        conn = await asyncpg.connect(database)
        try:
            shredded = await conn.fetchval(
                "SELECT count(*) FROM audit_events WHERE message_id = $1 AND outcome = 'shredded'",
                uuid.UUID(message_id),
            )
        finally:
            await conn.close()
        assert shredded == 1
        figures = await _metrics(hub)
        assert figures['handover_housekeeping_rows_removed_total{duty="payload-retention"}'] == 1


async def test_two_hubs_on_one_database_never_run_a_duty_at_once(network: Network, database: str) -> None:
    """Every delete of the duty is logged with its backend and times (slowed by 50 ms so runs would overlap if
    they could); across many rounds on two hubs, no two deletes of the duty ever overlap in time."""
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(
            "CREATE TABLE delete_log (pid int, started timestamptz, ended timestamptz);"
            " CREATE FUNCTION log_delete() RETURNS trigger LANGUAGE plpgsql AS $$ DECLARE t0 timestamptz; BEGIN"
            " t0 := clock_timestamp(); PERFORM pg_sleep(0.05);"
            " INSERT INTO delete_log VALUES (pg_backend_pid(), t0, clock_timestamp()); RETURN NULL; END; $$;"
            " CREATE TRIGGER log_delete BEFORE DELETE ON used_token_ids"
            " FOR EACH STATEMENT EXECUTE FUNCTION log_delete()"
        )
        async with (
            running_hub(network, database, housekeeping_seconds=0.2) as first,
            running_hub(network, database, housekeeping_seconds=0.2),
        ):
            for _ in range(8):
                await _expire_token_ids(database, 11_000)  # three batches per run
                await _wait_for(database, EXPIRED, 0, within=30)
            # While another process holds the duty (here: this test), neither hub runs it.
            await conn.execute("SELECT pg_advisory_lock($1)", duty_lock_key("used-token-ids"))
            await _expire_token_ids(database, 100)
            await asyncio.sleep(1.5)
            assert await _count(database, EXPIRED) == 100
            await conn.execute("SELECT pg_advisory_unlock($1)", duty_lock_key("used-token-ids"))
            await _wait_for(database, EXPIRED, 0)
            figures = await _metrics(first)
        runs = await conn.fetch("SELECT pid, started, ended FROM delete_log ORDER BY started")
    finally:
        await conn.close()
    assert len(runs) >= 8 * 3
    for earlier, later in itertools.pairwise(runs):
        assert later["started"] >= earlier["ended"], f"two deletes overlapped: {earlier} and {later}"
    assert figures['handover_housekeeping_rows_removed_total{duty="used-token-ids"}'] == 8 * 11_000 + 100
    assert timedelta(0) < runs[-1]["ended"] - runs[0]["started"]


async def test_idle_staff_sessions_and_unfinished_sign_ins_go_away_on_schedule(network: Network, database: str) -> None:
    conn = await asyncpg.connect(database)
    try:
        for digest, seen, ended in (
            ("a" * 64, timedelta(hours=2), None),  # idle past the 30-minute timeout: goes
            ("b" * 64, timedelta(minutes=1), timedelta(hours=1)),  # signed out an hour ago: goes
            ("c" * 64, timedelta(minutes=1), None),  # in use: stays
        ):
            await conn.execute(
                "INSERT INTO ui_sessions (token_sha256, subject, display_name, role, issuer, csrf_token, created_at,"
                " last_seen_at, ended_at) VALUES ($1, 'synthetic-user', 'Synthetic User', 'governance', 'dev',"
                " 'csrf', now() - interval '3 hours', now() - $2::interval, now() - $3::interval)",
                digest,
                seen,
                ended,
            )
        # A sign-in abandoned an hour ago goes; one in flight stays.
        for digest, age in (("d" * 64, timedelta(hours=1)), ("e" * 64, timedelta(minutes=1))):
            await conn.execute(
                "INSERT INTO ui_sign_in_attempts (state_sha256, nonce, code_verifier, redirect_uri, created_at)"
                " VALUES ($1, 'nonce', 'verifier', 'http://127.0.0.1/ui/callback', now() - $2::interval)",
                digest,
                age,
            )
    finally:
        await conn.close()
    async with running_hub(network, database, housekeeping_seconds=0.5) as hub:
        await _wait_for(database, "SELECT count(*) FROM ui_sessions", 1)
        await _wait_for(database, "SELECT count(*) FROM ui_sign_in_attempts", 1)
        assert await _count(database, "SELECT count(*) FROM ui_sessions WHERE token_sha256 = repeat('c', 64)") == 1
        assert await _count(database, "SELECT count(*) FROM ui_sign_in_attempts WHERE state_sha256 = repeat('e', 64)")
        await asyncio.sleep(0.6)
        figures = await _metrics(hub)
        assert figures['handover_housekeeping_rows_removed_total{duty="staff-sign-ins"}'] == 3
        assert figures['handover_housekeeping_last_run_success{duty="staff-sign-ins"}'] == 1
