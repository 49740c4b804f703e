"""Benchmark of the staff worklist (issue 11): `GET /ui/` rendered by a real hub over HTTP with 10,000 episodes,
next to `GET /healthz` (the same server, the same client, no database work) measured in the same run, and the
query plan of the worklist's statement.

    .venv/bin/python bench/worklist.py [--episodes 10000] [--rounds 30]

Uses HANDOVER_BENCH_DATABASE_URL (a server DSN; a scratch database is created and dropped) or the private
embedded cluster under var/bench. Episodes are written straight into the tables (a referral each; a tenth of
them past their SMDT deadline, a tenth with a transfer awaiting acceptance, a third with a pathway start) so the
run takes seconds. Timings are medians of `rounds` requests after a warm-up; the exit status is non-zero only
when something fails, never because of speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.audit_verify import drop_database, scratch_database  # noqa: E402
from service.app import build_app  # noqa: E402
from service.config import Settings  # noqa: E402
from service.episodes import snapshot  # noqa: E402
from service.episodes.machine import Clinician, Fact, Kind, start  # noqa: E402
from service.identity.keystore import init_keys  # noqa: E402
from service.identity.staff import ensure_dev_staff_key  # noqa: E402
from service.store import worklist_reads  # noqa: E402
from service.store.embedded import ensure_cluster  # noqa: E402
from service.ui.sessions import SESSION_COOKIE  # noqa: E402
from service.ui.state import SESSION_STORE  # noqa: E402

REFERRERS = ["RM1", "RDE", "RGN", "RC9", "RGP", "RCX", "RGR"]
TARGET_MS = 300


async def load_episodes(dsn: str, count: int, now: datetime) -> None:
    messages, episodes, links, deadlines = [], [], [], []
    for n in range(count):
        referrer = REFERRERS[n % len(REFERRERS)]
        message_id, episode_id = uuid.uuid4(), uuid.uuid4()
        at = now - timedelta(days=n % 30, minutes=n)
        fact = Fact(Kind.REFERRAL, str(message_id), referrer, "RGT", at, Clinician(referrer, f"Clinician {n}"))
        episode = start(fact)
        messages.append(
            (message_id, referrer, "RGT", "referral", f"urn:uuid:{uuid.uuid4()}", "0" * 64, uuid.uuid4(), at)
        )
        pathway_start = (at - timedelta(days=20 + n % 50)).date() if n % 3 == 0 else None
        episodes.append(
            (
                episode_id,
                f"{n:064x}",
                f"ref-{n}",
                referrer,
                "RGT",
                "referred",
                json.dumps(snapshot.dump(episode)),
                pathway_start,
                at,
                at,
            )
        )
        links.append((episode_id, message_id, "referral", referrer, "RGT", at, True))
        kind = "transfer-response" if n % 10 == 5 else "smdt-outcome"
        due = now - timedelta(hours=1) if n % 10 == 0 else now + timedelta(days=1 + n % 13)
        alerted = due + timedelta(minutes=1) if due < now else None  # the safety net has already told the referrer
        deadlines.append((episode_id, kind, message_id, "RGT", referrer, due, alerted))
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "messages",
            records=messages,
            columns=[
                "id",
                "sender_ods",
                "recipient_ods",
                "event",
                "bundle_identifier",
                "payload_sha256",
                "request_id",
                "accepted_at",
            ],
        )
        await conn.copy_records_to_table(
            "episodes",
            records=episodes,
            columns=[
                "id",
                "nhs_number_hmac",
                "referral_identifier",
                "referrer_ods",
                "centre_ods",
                "state",
                "snapshot",
                "pathway_start",
                "opened_at",
                "updated_at",
            ],
        )
        await conn.copy_records_to_table(
            "episode_messages",
            records=links,
            columns=["episode_id", "message_id", "kind", "sender_ods", "recipient_ods", "at", "changed"],
        )
        await conn.copy_records_to_table(
            "deadlines",
            records=deadlines,
            columns=["episode_id", "kind", "message_id", "owed_by", "waiting", "due_at", "alerted_at"],
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def plan(dsn: str, now: datetime) -> list[str]:
    where = worklist_reads.WorklistFilter(party="RM1", referrer=None, state=None, overdue_only=False)
    conn = await asyncpg.connect(dsn)
    try:
        return await worklist_reads.worklist_plan(conn, where, now=now, today=now.date(), horizon_days=7)
    finally:
        await conn.close()


async def median_ms(session: aiohttp.ClientSession, url: str, rounds: int, cookie: str | None) -> float:
    headers = {"Accept": "text/html"} | ({"Cookie": f"{SESSION_COOKIE}={cookie}"} if cookie else {})
    for _ in range(3):
        async with session.get(url, headers=headers) as resp:
            assert resp.status == 200, (url, resp.status)
            await resp.read()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        async with session.get(url, headers=headers) as resp:
            await resp.read()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def main(count: int, rounds: int) -> int:
    console = Console()
    server = (
        os.environ.get("HANDOVER_BENCH_DATABASE_URL") or ensure_cluster(ROOT / "var" / "bench", log=lambda _: None).dsn
    )
    dsn = await scratch_database(server)
    keys = Path(tempfile.mkdtemp(prefix="handover-bench-ui-"))
    try:
        shutil.copy(ROOT / "keys" / "network.json", keys / "network.json")
        init_keys(keys / "network.json", keys / "private")
        ensure_dev_staff_key(keys / "private")
        now = datetime.now(UTC)
        with console.status(f"writing {count:,} episodes"):
            await load_episodes(dsn, count, now)
        settings = replace(
            Settings.from_env({"HANDOVER_LISTEN": "127.0.0.1:0"}),
            database_url=dsn,
            network_path=keys / "network.json",
            keys_dir=keys / "private",
            dev_idp=True,
            port=8099,
        )
        app = build_app(settings, dsn)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        base = f"http://127.0.0.1:{port}"
        rows = []
        try:
            store = app[SESSION_STORE]
            async with aiohttp.ClientSession() as session:
                baseline = await median_ms(session, f"{base}/healthz", rounds, None)
                rows.append(("GET /healthz (baseline)", baseline))
                for role, path in (
                    ("governance", "/ui/"),
                    ("governance", "/ui/?overdue=yes"),
                    ("governance", "/ui/?page=40"),
                    ("smdt-coordinator", "/ui/"),
                    ("trust:RM1", "/ui/"),
                ):
                    token, _ = await store.open(subject="bench", display_name="Bench", role=role, issuer="bench")
                    with console.status(f"{role} {path}"):
                        rows.append((f"GET {path} as {role}", await median_ms(session, base + path, rounds, token)))
        finally:
            await runner.cleanup()
        table = Table(title=f"Worklist with {count:,} episodes (median of {rounds} requests)")
        for column in ("request", "median ms", "x baseline", f"under {TARGET_MS} ms"):
            table.add_column(column)
        for name, ms in rows:
            table.add_row(name, f"{ms:.1f}", f"{ms / baseline:.1f}", "yes" if ms < TARGET_MS else "NO")
        console.print(table)
        console.print("[bold]Plan of the worklist statement (trust:RM1, first page):[/]")
        for line in await plan(dsn, now):
            print("  " + line)  # the plan as PostgreSQL wrote it, unwrapped
    finally:
        await drop_database(server, dsn)
        shutil.rmtree(keys, ignore_errors=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=30)
    options = parser.parse_args()
    sys.exit(asyncio.run(main(options.episodes, options.rounds)))
