"""Soak benchmark (issue 16): does anything grow without bound when the hub runs for a long time?

    .venv/bin/python -m bench.soak [--minutes 30] [--hostile 0.1] [--sample-seconds 60]

Starts `handover serve` on a scratch database of its own (HANDOVER_BENCH_DATABASE_URL, or the embedded cluster
under var/bench) with the centre receiving by push at a live recipient, the safety net and housekeeping on, and
payload retention shortened (--retention, default 5m) so every lifetime duty reaches its steady state within the
run. It measures the hub's maximum throughput briefly (16 clients, closed loop), then sends at half of it (open
loop) for --minutes, sampling every --sample-seconds: accepted/s, p50/p99 latency, the hub's RSS, open database
connections, database size per accepted message, rows per table and queue depths. With --hostile F, a share F
of requests is hostile (bad signatures, oversized bodies, deep JSON, replayed tokens) and each must be refused
with its stated error code.

Verdict: latency and RSS flat (the last five samples within 10% of the first five after warm-up; fewer when the
run is short), every table's rows within the bound its stated lifetime allows at every sample, no error
responses, every accepted message pushed. Exit status 1 when the verdict fails. The table is also written to
var/bench/soak-latest.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from adapters.recipient import Recipient
from bench.load_hub import (
    BenchNetwork,
    HubProcess,
    bench_server,
    closed_loop,
    free_port,
    hub_process,
    scratch_database,
)
from bench.load_messages import signed_referrals
from bench.soak_sample import (
    LIFETIMES,
    Context,
    Sample,
    Timeline,
    check_tables,
    database_figures,
    process_rss,
)
from bench.soak_traffic import Sender, Traffic, Window
from service.crypto.retention import RetentionPolicy

ROOT = Path(__file__).resolve().parents[1]
MAX_BODY = 1024 * 1024  # the soak hub's HANDOVER_MAX_BODY_BYTES: oversized hostile bodies stay cheap to send
console = Console(record=True, width=170)


@dataclass(frozen=True)
class Settings:
    housekeeping_seconds: float
    retention_seconds: float
    retention_sweep_seconds: float = 60
    checkpoint_seconds: float = 10

    def env(self, retention: str) -> dict[str, str]:
        return {
            "HANDOVER_HOUSEKEEPING_SECONDS": str(self.housekeeping_seconds),
            "HANDOVER_PAYLOAD_RETENTION": retention,
            "HANDOVER_RETENTION_SWEEP_SECONDS": str(self.retention_sweep_seconds),
            "HANDOVER_SAFETY_NET_SECONDS": "60",
            "HANDOVER_CHECKPOINT_SECONDS": str(self.checkpoint_seconds),
            "HANDOVER_MAX_BODY_BYTES": str(MAX_BODY),
            "HANDOVER_LOG_LEVEL": "WARNING",
        }


class Soak:
    def __init__(self, arguments: argparse.Namespace, settings: Settings) -> None:
        self.arguments = arguments
        self.settings = settings
        self.timeline = Timeline()
        self.samples: list[Sample] = []
        self.table_failures: dict[str, str] = {}
        self.errors: dict[str, int] = {}
        self.refused: dict[str, int] = {}
        self.accepted = 0
        self.duties: list[dict[str, object]] = []
        self.started = time.monotonic()

    async def run(self, hub: HubProcess, network: BenchNetwork, dsn: str, recipient: Recipient) -> float:
        """Measure the maximum, soak at half of it; returns the maximum."""
        registry = network.registry
        with console.status("maximum throughput: 16 clients, closed loop"):
            requests = signed_referrals(registry, network.keys_dir, self.arguments.max_messages, seed=5_000_000)
            self.timeline.tokens.extend([time.monotonic()] * len(requests))
            result = await closed_loop(hub.base, requests, clients=16)
            self.timeline.accepted.extend([time.monotonic()] * result.accepted)
        self.accepted += result.accepted
        for status, count in result.statuses.items():
            if status != 202:
                self.errors[f"maximum phase: {status}"] = count
        traffic = Traffic(
            registry, network.keys_dir, hostile=self.arguments.hostile, max_body=MAX_BODY, seed=10_000_000
        )
        sender = Sender(hub.base, traffic, result.rate / 2, timeline=self.timeline)
        stopping = asyncio.Event()
        sending = asyncio.create_task(sender.run(stopping))
        conn = await asyncpg.connect(dsn)
        try:
            await self._sample_until_done(hub, conn, sender, recipient, result.rate)
            stopping.set()
            await sending
            await self._wait_for_pushes(sender, recipient)
            self.duties = [
                dict(r)
                for r in await conn.fetch(
                    "SELECT duty, removed_total, runs_total, failures_total FROM housekeeping_duties ORDER BY duty"
                )
            ]
        finally:
            await conn.close()
        return result.rate

    async def _sample_until_done(
        self, hub: HubProcess, conn: asyncpg.Connection, sender: Sender, recipient: Recipient, maximum: float
    ) -> None:
        every = self.arguments.sample_seconds
        count = max(1, round(self.arguments.minutes * 60 / every))
        columns = (TextColumn("soak at {task.fields[rate]:.0f}/s"), BarColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("soak", total=count, rate=maximum / 2)
            began = time.monotonic()
            for number in range(1, count + 1):
                await asyncio.sleep(max(0.0, began + number * every - time.monotonic()))
                window, sender.window = sender.window, Window()
                sample = await self._sample(number * every / 60, hub, conn, window, recipient, sender=sender)
                self.samples.append(sample)
                progress.update(task, advance=1)
                progress.console.print(_sample_line(sample))

    async def _sample(
        self,
        minute: float,
        hub: HubProcess,
        conn: asyncpg.Connection,
        window: Window,
        recipient: Recipient,
        *,
        sender: Sender,
    ) -> Sample:
        self.accepted += window.accepted
        for what, n in window.errors.items():
            self.errors[what] = self.errors.get(what, 0) + n
        for kind, n in window.refused_as_expected.items():
            self.refused[kind] = self.refused.get(kind, 0) + n
        rows, size, connections, pending, open_deadlines = await database_figures(conn)
        latencies = sorted(window.latencies)
        sample = Sample(
            minute=minute,
            accepted_per_second=window.accepted / self.arguments.sample_seconds,
            p50_ms=1000 * latencies[len(latencies) // 2] if latencies else float("nan"),
            p99_ms=1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else float("nan"),
            rss_bytes=process_rss(hub.pid),
            connections=connections,
            database_bytes=size,
            accepted_total=self.accepted,
            pending_deliveries=pending,
            open_deadlines=open_deadlines,
            pushed_total=len(recipient.arrivals),
            rows=rows,
            errors=sum(window.errors.values()),
            hostile_refused=sum(window.refused_as_expected.values()),
        )
        dead = int(await conn.fetchval("SELECT count(*) FROM deliveries WHERE state = 'dead_letter'"))
        kept = self.settings.retention_seconds + 2 * self.settings.retention_sweep_seconds + 60
        recent = int(
            await conn.fetchval(
                "SELECT count(*) FROM deliveries WHERE coalesce(delivered_at, dead_lettered_at)"
                " > now() - make_interval(secs => $1)",
                kept,
            )
        )
        # Counted after the rows: every row seen is by now an answer received or a request still in flight.
        answered = self.accepted + sender.window.accepted + sender.in_flight
        derived = {"deliveries_pending": pending, "deliveries_dead": dead, "deliveries_ended_recently": recent}
        context = self._context({**rows, **derived}, answered)
        for table, (found, bound, ok) in check_tables(context).items():
            if not ok and table not in self.table_failures:
                self.table_failures[table] = f"minute {minute:.0f}: {found:,} rows, bound {bound}"
        return sample

    def _context(self, rows: dict[str, int], accepted: int) -> Context:
        s = self.settings
        return Context(
            now=time.monotonic(),
            timeline=self.timeline,
            rows=rows,
            accepted=accepted,
            refused=sum(self.refused.values()) + sum(self.errors.values()),
            elapsed_seconds=time.monotonic() - self.started,
            housekeeping_seconds=s.housekeeping_seconds,
            retention_seconds=s.retention_seconds,
            retention_sweep_seconds=s.retention_sweep_seconds,
            checkpoint_seconds=s.checkpoint_seconds,
        )

    async def _wait_for_pushes(self, sender: Sender, recipient: Recipient, within: float = 120.0) -> None:
        with console.status("waiting for the last pushes"):
            for _ in range(int(within / 0.5)):
                if sender.accepted_identifiers <= recipient.arrivals.keys():
                    break
                await asyncio.sleep(0.5)
        lost = len(sender.accepted_identifiers - recipient.arrivals.keys())
        if lost:
            self.errors["accepted but never pushed"] = lost


def _sample_line(s: Sample) -> str:
    return (
        f"min {s.minute:5.1f}  {s.accepted_per_second:6.1f} acc/s  p50 {s.p50_ms:6.1f} ms  p99 {s.p99_ms:7.1f} ms  "
        f"RSS {s.rss_bytes / 2**20:6.1f} MB  conns {s.connections:3d}  DB {s.database_bytes / 2**20:7.1f} MB  "
        f"pending {s.pending_deliveries:4d}  token ids {s.rows.get('used_token_ids', 0):6,d}  errors {s.errors}"
    )


def report(soak: Soak, maximum: float, arguments: argparse.Namespace) -> bool:
    """Print the samples, the tables and the verdict; True when the verdict passes."""
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end"
    title = (
        f"Handover soak, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {arguments.minutes:g} min at {maximum / 2:.0f}/s "
        f"(half of {maximum:.0f}/s measured), hostile {arguments.hostile:.0%}, {machine}"
    )
    table = Table(title=title)
    for heading in ("min", "accepted/s", "p50 ms", "p99 ms", "RSS MB", "DB conns", "DB MB", "KB/accepted"):
        table.add_column(heading, justify="right")
    later = ("pending", "pushed lag", "token ids", "data keys", "messages", "audit", "hostile refused", "errors")
    for heading in later:
        table.add_column(heading, justify="right")
    for s in soak.samples:
        table.add_row(
            f"{s.minute:g}" if s.minute < 10 else f"{s.minute:.0f}",
            f"{s.accepted_per_second:.1f}",
            f"{s.p50_ms:.1f}",
            f"{s.p99_ms:.1f}",
            f"{s.rss_bytes / 2**20:.1f}",
            str(s.connections),
            f"{s.database_bytes / 2**20:.1f}",
            f"{s.bytes_per_message / 1024:.1f}",
            str(s.pending_deliveries),
            str(max(0, s.accepted_total - s.pushed_total)),
            f"{s.rows.get('used_token_ids', 0):,}",
            f"{s.rows.get('data_keys', 0):,}",
            f"{s.rows.get('messages', 0):,}",
            f"{s.rows.get('audit_events', 0):,}",
            str(s.hostile_refused),
            str(s.errors),
        )
    console.print(table)
    _print_lifetimes(soak)
    return _print_verdict(soak, arguments)


def _print_lifetimes(soak: Soak) -> None:
    first, last = soak.samples[0], soak.samples[-1]
    minutes = max(last.minute - first.minute, 1e-9)
    table = Table(title="Rows per table against its stated lifetime (docs/operations.md)")
    for heading in ("table", "rows, first sample", "rows, last sample", "growth/min", "stated lifetime", "bound"):
        table.add_column(heading, justify="left" if heading in ("table", "stated lifetime") else "right")
    table.add_column("within", justify="left")
    for name in sorted(last.rows):
        rule = LIFETIMES.get(name)
        growth = (last.rows[name] - first.rows.get(name, 0)) / minutes
        verdict = "[red]no[/red] " + soak.table_failures[name] if name in soak.table_failures else "yes"
        table.add_row(
            name,
            f"{first.rows.get(name, 0):,}",
            f"{last.rows[name]:,}",
            f"{growth:,.0f}",
            rule.stated if rule else "[red]none stated[/red]",
            rule.describe_bound if rule else "",
            verdict,
        )
    console.print(table)


def _print_verdict(soak: Soak, arguments: argparse.Namespace) -> bool:
    measured = soak.samples[arguments.warmup :]
    width = min(5, len(measured) // 2)
    checks: list[tuple[str, bool, str]] = []
    if width == 0:
        checks.append(("enough samples to judge flatness", False, f"{len(measured)} after warm-up"))
    else:
        first, last = measured[:width], measured[-width:]
        for label, attribute in (("p50 latency", "p50_ms"), ("p99 latency", "p99_ms")):
            before = statistics.mean(getattr(s, attribute) for s in first)
            after = statistics.mean(getattr(s, attribute) for s in last)
            checks.append((f"{label} flat", after <= 1.10 * before, f"{before:.1f} ms -> {after:.1f} ms"))
        rss_before = statistics.mean(s.rss_bytes for s in first)
        rss_after = statistics.mean(s.rss_bytes for s in last)
        slope = (last[-1].rss_bytes - last[0].rss_bytes) / max(last[-1].minute - last[0].minute, 1e-9)
        checks.append(
            (
                "RSS flat",
                rss_after <= 1.10 * rss_before,
                f"{rss_before / 2**20:.1f} MB -> {rss_after / 2**20:.1f} MB ({rss_after / rss_before:.3f} x); "
                f"{slope / 2**20:+.2f} MB/min across the last window",
            )
        )
        note = f"samples {arguments.warmup + 1}-{arguments.warmup + width} vs the last {width}"
        checks.append(("windows compared", True, note))
    unexplained = ", ".join(f"{t}: {why}" for t, why in sorted(soak.table_failures.items()))
    checks.append(("every table within its lifetime's bound", not soak.table_failures, unexplained or "all tables"))
    errors = ", ".join(f"{what} x{n}" for what, n in sorted(soak.errors.items()))
    duties = "; ".join(
        f"{d['duty']}: {d['removed_total']:,} rows in {d['runs_total']} runs, {d['failures_total']} failed"
        for d in soak.duties
    )
    checks.append(("housekeeping ran without failure", all(d["failures_total"] == 0 for d in soak.duties), duties))
    checks.append(("no error responses, every accepted message pushed", not soak.errors, errors or "none"))
    if arguments.hostile > 0:
        refused = ", ".join(f"{kind} {n}" for kind, n in sorted(soak.refused.items()))
        checks.append(("every hostile request refused with its code", bool(soak.refused), refused or "none sent"))
    table = Table(title="Verdict")
    for heading in ("check", "result", "figures"):
        table.add_column(heading)
    for name, ok, detail in checks:
        table.add_row(name, "[green]pass[/green]" if ok else "[red]FAIL[/red]", detail)
    console.print(table)
    return all(ok for _, ok, _ in checks)


async def main(arguments: argparse.Namespace) -> int:
    directory = Path(tempfile.mkdtemp(prefix="handover-soak-"))
    server, cluster = bench_server()
    retention = RetentionPolicy.parse(arguments.retention).default.total_seconds()
    settings = Settings(arguments.housekeeping_seconds, retention)
    soak = Soak(arguments, settings)
    recipient = Recipient(strict=False)  # the centre's EPR: accepts every push and counts it
    port = free_port()
    await recipient.start(port)
    try:
        network = BenchNetwork.create(directory / "network", centre_endpoint=f"http://127.0.0.1:{port}/fhir")
        env = settings.env(arguments.retention)
        async with (
            scratch_database(server) as dsn,
            hub_process(network, dsn, workers=arguments.workers, log_name="soak", env=env) as hub,
        ):
            maximum = await soak.run(hub, network, dsn, recipient)
    finally:
        await recipient.stop()
        if cluster is not None and cluster.started_here:
            cluster.stop()
    if not soak.samples:
        console.print(f"[red]no samples taken[/red] (logs in {directory})")
        return 1
    passed = report(soak, maximum, arguments)
    out = ROOT / "var" / "bench" / "soak-latest.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(console.export_text(), encoding="utf-8")
    console.print(f"written to {out.relative_to(ROOT)}; hub log in {directory}")
    return 0 if passed else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30, help="length of the soak (default 30)")
    parser.add_argument("--hostile", type=float, default=0.0, help="share of hostile requests (e.g. 0.1)")
    parser.add_argument("--sample-seconds", type=float, default=60, help="sampling interval (default 60)")
    parser.add_argument("--warmup", type=int, default=1, help="samples left out of the flatness check (default 1)")
    parser.add_argument("--workers", type=int, default=1, help="hub processes (default 1)")
    parser.add_argument("--max-messages", type=int, default=1000, help="messages to measure the maximum (1000)")
    parser.add_argument("--retention", default="5m", help="HANDOVER_PAYLOAD_RETENTION for the soak (default 5m)")
    parser.add_argument("--housekeeping-seconds", type=float, default=60, help="HANDOVER_HOUSEKEEPING_SECONDS")
    sys.exit(asyncio.run(main(parser.parse_args())))
