"""Benchmark of the staff pages with a realistic volume: the worklist (`GET /ui/`) and the governance summary
(`GET /ui/governance`, and its CSV) rendered by a real `handover serve` process over HTTP, signed in through the
development OIDC provider, next to a `/healthz` round trip measured in the same run (the baseline: HTTP, the
client and the server's middlewares, without the page's queries and template).

    .venv/bin/python bench/ui_pages.py [--episodes 10000] [--requests 40]

Uses HANDOVER_BENCH_DATABASE_URL (a server DSN; a scratch database is created and dropped) or a private
embedded cluster under var/bench. The episodes (referrals from the seven referring trusts over three years, in
every state of the pathway, with their timeline, deadlines and ledger) are loaded set-based with INSERT ...
SELECT from generate_series, then VACUUM ANALYZE (as autovacuum would leave them): not timed. Prints the
median and 95th percentile of each page, the ratio to the baseline, and the executed plans (EXPLAIN ANALYZE)
of the pages' queries, to show index use. Target: each page under 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path

import aiohttp
import asyncpg
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.audit_verify import drop_database, scratch_database  # noqa: E402
from service.keystore import init_keys  # noqa: E402
from service.store import governance_reads, worklist_reads  # noqa: E402
from service.store.embedded import ensure_cluster  # noqa: E402
from tests.support.hub import free_port  # noqa: E402
from tests.ui.http_signin import sign_in  # noqa: E402

TARGET_MS = 300.0
REFERRERS = ("RM1", "RDE", "RGN", "RC9", "RGP", "RCX", "RGR")

# One row per episode i; its stage (i % 10) decides how far along the pathway it is. Times are spread over
# three years back from now, so some SMDT outcomes and transfers are overdue and some clocks about to breach.
LOAD_SQL = """
CREATE TEMP TABLE bench_episodes AS
SELECT i,
       md5('episode' || i)::uuid AS id,
       (ARRAY['RM1','RDE','RGN','RC9','RGP','RCX','RGR'])[1 + i % 7] AS referrer,
       now() - make_interval(days => (i * 7919) % 1100, hours => i % 24) AS opened_at,
       i % 10 AS stage
FROM generate_series(1, $1::int) AS i;

CREATE TEMP TABLE bench_messages AS
SELECT e.id AS episode_id, md5(k.kind || e.i)::uuid AS message_id, k.kind, k.sender, k.recipient, k.at, k.changed
FROM bench_episodes e
CROSS JOIN LATERAL (VALUES
    ('referral', e.referrer, 'RGT', e.opened_at, true, 0),
    ('acknowledgement', 'RGT', e.referrer, e.opened_at + interval '2 hours', false, 0),
    (CASE WHEN e.stage = 2 THEN 'outcome-more-information-needed' WHEN e.stage = 3 THEN 'outcome-declined'
          ELSE 'outcome-accepted' END,
     'RGT', e.referrer, e.opened_at + make_interval(days => 3 + e.i % 20), true, 2),
    ('transfer-requested', e.referrer, 'RGT', e.opened_at + interval '30 days', true, 5),
    ('transfer-accepted', 'RGT', e.referrer, e.opened_at + make_interval(days => 30, hours => 1 + e.i % 48), true, 6),
    ('discharge-summary', 'RGT', e.referrer, e.opened_at + interval '60 days', true, 7)
) AS k(kind, sender, recipient, at, changed, from_stage)
WHERE e.stage >= k.from_stage;

INSERT INTO messages (id, sender_ods, recipient_ods, event, bundle_identifier, payload_sha256, request_id,
                      accepted_at, payload_shredded_at)
SELECT message_id, sender, recipient, kind, 'urn:uuid:' || message_id, encode(sha256(message_id::text::bytea), 'hex'),
       md5('request' || message_id)::uuid, at, at + interval '30 days'
FROM bench_messages;

INSERT INTO episodes (id, nhs_number_hmac, referral_identifier, referrer_ods, centre_ods, state, snapshot,
                      pathway_start, opened_at, updated_at)
SELECT e.id, encode(sha256(('patient' || e.i)::bytea), 'hex'), 'urn:uuid:' || md5('referral' || e.i)::uuid,
       e.referrer, 'RGT', s.state,
       jsonb_build_object(
           'state', s.state, 'referrer', e.referrer, 'centre', 'RGT', 'pending', NULL,
           'discharge_summary_at', NULL, 'answered', '[]'::jsonb, 'history', '[]'::jsonb,
           'ledger', jsonb_build_array(jsonb_build_object(
               'clinician', jsonb_build_object('ods', CASE WHEN e.stage IN (6, 7) THEN 'RGT' ELSE e.referrer END,
                                               'name', 'Dr Bench ' || e.i, 'identifier', NULL),
               'since', e.opened_at, 'caused_by', md5('referral' || e.i)::uuid, 'accepted_by', NULL))),
       CASE WHEN e.i % 2 = 0 THEN (e.opened_at - interval '10 days')::date END,
       e.opened_at, e.opened_at
FROM bench_episodes e
CROSS JOIN LATERAL (SELECT (ARRAY['referred', 'referred', 'more-information-needed', 'declined-closed', 'accepted',
                                  'transfer-requested', 'at-centre', 'discharge-summary-sent', 'closed',
                                  'closed'])[1 + e.stage] AS state) AS s;

INSERT INTO episode_messages (episode_id, message_id, kind, sender_ods, recipient_ods, at, changed, acknowledged_at)
SELECT episode_id, message_id, kind, sender, recipient, at, changed,
       CASE WHEN kind = 'referral' THEN at + interval '2 hours' END
FROM bench_messages;

INSERT INTO responsibility_ledger (episode_id, seq, ods, clinician_name, since, caused_by)
SELECT e.id, 0, e.referrer, 'Dr Bench ' || e.i, e.opened_at, md5('referral' || e.i)::uuid FROM bench_episodes e;

INSERT INTO deadlines (episode_id, kind, message_id, owed_by, waiting, due_at, met_at)
SELECT e.id, 'smdt-outcome', md5('referral' || e.i)::uuid, 'RGT', e.referrer, e.opened_at + interval '14 days',
       CASE WHEN e.stage >= 2 THEN e.opened_at + make_interval(days => 3 + e.i % 20) END
FROM bench_episodes e
UNION ALL
SELECT e.id, 'acknowledgement', md5('referral' || e.i)::uuid, 'RGT', e.referrer, e.opened_at + interval '4 hours',
       e.opened_at + interval '2 hours'
FROM bench_episodes e
UNION ALL
SELECT e.id, 'transfer-response', md5('transfer-requested' || e.i)::uuid, 'RGT', e.referrer,
       e.opened_at + interval '31 days',
       CASE WHEN e.stage >= 6 THEN e.opened_at + make_interval(days => 30, hours => 1 + e.i % 48) END
FROM bench_episodes e WHERE e.stage >= 5;
"""


async def load_episodes(dsn: str, count: int) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            for statement in LOAD_SQL.split(";\n"):
                if statement.strip():
                    await conn.execute(statement, count) if "$1" in statement else await conn.execute(statement)
        await conn.execute("VACUUM ANALYZE")  # the steady state autovacuum keeps: statistics and visibility map
        return {
            table: int(await conn.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608 - fixed names
            for table in ("episodes", "episode_messages", "deadlines", "messages")
        }
    finally:
        await conn.close()


def start_hub(dsn: str, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    network = workdir / "network.json"
    shutil.copy(ROOT / "keys" / "network.json", network)
    init_keys(network, workdir / "private")
    env = {
        **os.environ,
        "HANDOVER_DATABASE_URL": dsn,
        "HANDOVER_LISTEN": f"127.0.0.1:{port}",
        "HANDOVER_NETWORK": str(network),
        "HANDOVER_KEYS_DIR": str(workdir / "private"),
        "HANDOVER_DEV_IDP": "1",
    }
    log = (workdir / "hub.log").open("wb")
    return subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "handover"), "serve", "--workers", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def wait_ready(base_url: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"{base_url}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the hub did not become ready; see its log")
            await asyncio.sleep(0.2)


async def timed(fetch: Callable[[], Awaitable[int]], count: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        assert await fetch() == 200
    times = []
    for _ in range(count):
        started = time.perf_counter()
        status = await fetch()
        times.append((time.perf_counter() - started) * 1000)
        assert status == 200, status
    return times


def getter(client: aiohttp.ClientSession, url: str) -> Callable[[], Awaitable[int]]:
    async def fetch() -> int:
        async with client.get(url) as resp:
            await resp.read()
            return resp.status

    return fetch


async def plans(dsn: str) -> dict[str, list[str]]:
    """The executed plans of the pages' queries (the worklist's as the governance user's first page sees it)."""
    now = datetime.now(UTC)
    conn = await asyncpg.connect(dsn)
    try:
        governance = await governance_reads.explain_figures(conn, now)
        where = worklist_reads.WorklistFilter(party=None, referrer=None, state=None, overdue_only=False)
        worklist = await worklist_reads.worklist_plan(conn, where, now=now, today=date.today(), horizon_days=7)
        return {"governance summary": governance, "worklist page": worklist}
    finally:
        await conn.close()


async def main(episodes: int, requests: int) -> None:
    console = Console()
    server = os.environ.get("HANDOVER_BENCH_DATABASE_URL")
    if not server:
        server = ensure_cluster(ROOT / "var" / "bench", log=lambda line: None).dsn
    dsn = await scratch_database(server)
    workdir = Path(tempfile.mkdtemp(prefix="handover-bench-ui-"))
    hub = None
    try:
        started = time.perf_counter()
        counts = await load_episodes(dsn, episodes)
        console.print(
            f"loaded {counts['episodes']:,} episodes, {counts['episode_messages']:,} timeline messages, "
            f"{counts['deadlines']:,} deadlines in {time.perf_counter() - started:.1f} s (set-based, not timed below)"
        )
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        hub = start_hub(dsn, port, workdir)
        await wait_ready(base)
        user = await sign_in(base, "amara.okafor")  # governance, through the development OIDC provider
        pages = [
            ("/healthz round trip (baseline)", f"{base}/healthz"),
            ("worklist GET /ui/ (first page of 25)", f"{base}/ui/"),
            ("worklist, overdue only, page 3", f"{base}/ui/?overdue=true&page=3"),
            ("governance summary GET /ui/governance", f"{base}/ui/governance"),
            ("governance CSV GET /ui/governance.csv", f"{base}/ui/governance.csv"),
            ("every episode GET /ui/episodes (first page)", f"{base}/ui/episodes"),
            ("episodes, a target missed, oldest, page 2", f"{base}/ui/episodes?breach=any&sort=oldest&page=2"),
            ("episodes of one trust and year", f"{base}/ui/episodes?trust=RM1&from=2025-01-01&to=2025-12-31"),
        ]
        results: list[tuple[str, list[float]]] = []
        try:
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("measuring", total=len(pages))
                for label, url in pages:
                    results.append((label, await timed(getter(user.client, url), requests)))
                    progress.advance(task)
        finally:
            await user.client.close()
        baseline = statistics.median(results[0][1])
        table = Table(title=f"Staff pages with {counts['episodes']:,} episodes ({requests} requests each)")
        for column in ("page", "median ms", "p95 ms", "x baseline", f"under {TARGET_MS:.0f} ms"):
            table.add_column(column, justify="left" if column == "page" else "right")
        for label, times in results:
            middle, p95 = statistics.median(times), statistics.quantiles(times, n=20)[-1]
            table.add_row(
                label, f"{middle:.1f}", f"{p95:.1f}", f"{middle / baseline:.1f}", "yes" if p95 < TARGET_MS else "NO"
            )
        console.print(table)
        console.print(
            f"{platform.node()} · {platform.processor() or platform.machine()} · {os.cpu_count()} CPUs · "
            f"Python {platform.python_version()} · {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        )
        for name, lines in (await plans(dsn)).items():
            console.rule(f"EXPLAIN ANALYZE: {name}")
            console.print("\n".join(lines), markup=False, highlight=False)
    finally:
        if hub is not None:
            hub.terminate()
            hub.wait(timeout=30)
        await drop_database(server, dsn)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=40)
    options = parser.parse_args()
    asyncio.run(main(options.episodes, options.requests))
