"""Load benchmark of the hub's intake (issue 12): every figure below is measured in the same run.

    .venv/bin/python -m bench.load [--messages 1500] [--workers-max 2] [--rounds 3] [--no-mesh] [--growth]
        [--no-instructions]

Items 1, 2, 3 and 6 are measured in `--rounds` interleaved rounds: a ratio is the median of each round's own ratio
(with its range), since on a shared virtual machine one run of a phase can be 10% off the next.

1. the bare pipeline ceiling (bench/load_ceiling.py), 16 tasks in one process;
2. `handover serve` with one worker: one sequential client, then 16 concurrent clients;
3. the same with two workers (16 clients);
4. one worker at half of its measured maximum (open loop): p50 / p99 latency;
5. accepted → pushed: a live recipient at the centre's push endpoint, the time from the 202 to its arrival;
6. NHS England's MESH sandbox (bench/load_mesh.py): one sequential mesh-client sender, same payload bytes.

Then the arithmetic of the distance from 0.8 of the ceiling: each CPU-only stage timed in this process
(bench/load_stages.py), and, where valgrind is installed, instructions per message counted by callgrind for the
one-worker hub under 16 clients, the ceiling and each stage (bench/load_instructions.py; `--no-instructions`
skips them), set beside this run's CPU per message.

Uses HANDOVER_BENCH_DATABASE_URL (a server DSN; scratch databases are created and dropped) or a private
embedded cluster under var/bench. Each hub runs on a database of its own. The exit status is non-zero only
when something fails (a refusal, a lost push), never because of speed.
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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from adapters.recipient import Recipient
from bench.load_ceiling import bare_pipeline
from bench.load_cpu import CpuMeter, CpuShare, use_postgres_server
from bench.load_growth import cost_by_size, linear_fit, throughput_with_log
from bench.load_hub import (
    BenchNetwork,
    LoadResult,
    bench_server,
    closed_loop,
    hub_process,
    open_loop,
    running_hub,
    scratch_database,
)
from bench.load_instructions import callgrind_available, instructions
from bench.load_mesh import mesh_sequential_sends
from bench.load_messages import signed_referrals
from bench.load_stages import HUB_STAGES_IN_TURN, StageCost, stage_costs

ROOT = Path(__file__).resolve().parents[1]
console = Console(width=None if sys.stdout.isatty() else 150)  # a saved table keeps whole words in its cells


@dataclass
class Row:
    measure: str
    figure: str
    p50: str = ""
    p99: str = ""
    ratio: str = ""
    load: str = ""
    """The machine's 1-minute load average when the figure was taken (the median round's, for round figures)."""


def _load() -> float:
    return os.getloadavg()[0]


def _check(result: LoadResult, what: str) -> None:
    refused = {status: count for status, count in result.statuses.items() if status != 202}
    if refused:
        raise RuntimeError(f"{what}: not every message was accepted: {refused}")


async def hub_phase(
    server: str, network: BenchNetwork, *, workers: int, clients: int, count: int, warmup: int, name: str
) -> tuple[LoadResult, CpuShare]:
    """A fresh hub on a fresh database: `warmup` messages, then `count` timed ones from `clients` clients; the
    result and where the CPU went while the timed ones ran."""
    async with scratch_database(server) as dsn, hub_process(network, dsn, workers=workers, log_name=name) as hub:
        registry = network.registry
        await closed_loop(hub.base, signed_referrals(registry, network.keys_dir, warmup, seed=900_000), clients=clients)
        requests = signed_referrals(registry, network.keys_dir, count)
        meter = CpuMeter(hub.pid)
        meter.start()
        result = await closed_loop(hub.base, requests, clients=clients)
        share = meter.share(result.accepted)
        _check(result, name)
        return result, share


async def latency_phase(server: str, network: BenchNetwork, *, rate: float, count: int) -> LoadResult:
    async with scratch_database(server) as dsn, running_hub(network, dsn, workers=1, log_name="latency") as base:
        registry = network.registry
        await closed_loop(base, signed_referrals(registry, network.keys_dir, 100, seed=900_000), clients=4)
        result = await open_loop(base, signed_referrals(registry, network.keys_dir, count), rate=rate)
        _check(result, "latency at half the maximum")
        return result


async def push_phase(server: str, directory: Path, *, count: int) -> list[float]:
    """Seconds from each 202 to the push's arrival at a live recipient (one sequential sender, one worker)."""
    recipient = await Recipient(strict=False).start()  # accepts every push, notes when each arrived
    arrived, pushed = recipient.arrived_at, recipient.processed
    try:
        network = BenchNetwork.create(directory / "push", centre_endpoint=recipient.endpoint)
        async with scratch_database(server) as dsn, running_hub(network, dsn, workers=1, log_name="push") as base:
            requests = signed_referrals(network.registry, network.keys_dir, count)
            delays: list[float] = []
            for request in requests:
                pushed.clear()
                result = await closed_loop(base, [request], clients=1)
                _check(result, "accepted → pushed")
                async with asyncio.timeout(30):  # TimeoutError: the push never came
                    while request.identifier not in arrived:
                        await pushed.wait()
                        pushed.clear()
                delays.append(arrived[request.identifier] - result.accepted_at[request.identifier])
            return delays
    finally:
        await recipient.stop()


@dataclass
class Round:
    """One pass over the measures compared with each other: taken one after the other, so one ratio's two figures
    see the same state of the machine."""

    ceiling: float
    ceiling_cpu: float
    """The ceiling process's CPU microseconds per message."""
    sequential: tuple[LoadResult, CpuShare]
    mesh: float | None
    hubs: dict[int, tuple[LoadResult, CpuShare]]
    loads: dict[str, float]
    """The 1-minute load average at the end of each measure ("ceiling", "sequential", "mesh", "w1", ...)."""


async def measure_round(
    server: str, directory: Path, network: BenchNetwork, arguments: argparse.Namespace, number: int
) -> Round:
    count, warmup = arguments.messages, arguments.messages // 5
    registry, keys = network.registry, network.keys_dir
    label = f" (round {number + 1} of {arguments.rounds})" if arguments.rounds > 1 else ""
    with console.status(f"bare pipeline ceiling{label}"):
        async with scratch_database(server, migrated=False) as dsn:
            await bare_pipeline(dsn, registry, signed_referrals(registry, keys, warmup), concurrency=16)
            timed = signed_referrals(registry, keys, count)
            started = time.process_time()  # this process is the ceiling's (and the status line's thread)
            ceiling = await bare_pipeline(dsn, registry, timed, concurrency=16)
            ceiling_cpu = 1e6 * (time.process_time() - started) / count
    loads = {"ceiling": _load()}
    with console.status(f"hub: one worker, one sequential client{label}"):
        sequential = await hub_phase(
            server, network, workers=1, clients=1, count=count // 3, warmup=warmup // 3, name="sequential"
        )
    loads["sequential"] = _load()
    mesh = None
    if not arguments.no_mesh:
        with console.status(f"MESH sandbox: one sequential sender, same payload bytes{label}"):
            body = signed_referrals(registry, keys, 1)[0].body
            mesh = await mesh_sequential_sends(directory / f"mesh-{number}", body, count // 3)
        loads["mesh"] = _load()
    hubs = {}
    for workers in range(1, arguments.workers_max + 1):
        with console.status(f"hub: {workers} worker(s), 16 concurrent clients{label}"):
            hubs[workers] = await hub_phase(
                server, network, workers=workers, clients=16, count=count, warmup=warmup, name=f"w{workers}"
            )
        loads[f"w{workers}"] = _load()
    return Round(ceiling, ceiling_cpu, sequential, mesh, hubs, loads)


def _middle(values: list[float]) -> str:
    """The median of `values`, with their range when there are several."""
    middle = statistics.median(values)
    return f"{middle:.2f}" if len(values) == 1 else f"{middle:.2f} (range {min(values):.2f}-{max(values):.2f})"


def _median_round(rounds: list[Round], rate: Callable[[Round], float]) -> Round:
    """The round whose `rate` is the median (the lower of the two middle ones for an even count)."""
    ordered = sorted(rounds, key=rate)
    return ordered[(len(ordered) - 1) // 2]


async def throughput_rows(
    server: str, directory: Path, network: BenchNetwork, arguments: argparse.Namespace
) -> list[Row]:
    """The ceiling, the hub sequential and at 16 clients with 1..N workers, and the MESH sandbox, in `--rounds`
    interleaved rounds (figures: the median round; ratios: the median of each round's own ratio, and its range);
    then latency at half the one-worker maximum."""
    rounds = [await measure_round(server, directory, network, arguments, n) for n in range(arguments.rounds)]
    rows: list[Row] = []
    ceiling_round = _median_round(rounds, lambda r: r.ceiling)
    rows.append(
        Row(
            f"bare pipeline ceiling, one process, 16 tasks{_of(rounds)}",
            f"{ceiling_round.ceiling:,.0f} msgs/s",
            load=_loads(rounds, "ceiling"),
        )
    )
    sequential_round = _median_round(rounds, lambda r: r.sequential[0].rate)
    sequential, sequential_share = sequential_round.sequential
    rows.append(
        _latency_row(
            f"hub, one worker, one sequential client{_of(rounds)}", sequential, load=_loads(rounds, "sequential")
        )
    )
    rows.append(Row("  where the CPU went (one sequential client)", sequential_share.describe()))
    one_worker = _median_round(rounds, lambda r: r.hubs[1][0].rate).hubs[1]
    for workers in range(1, arguments.workers_max + 1):
        result, share = _median_round(rounds, lambda r, w=workers: r.hubs[w][0].rate).hubs[workers]
        ratio = f"{_middle([r.hubs[workers][0].rate / r.ceiling for r in rounds])} of ceiling"
        if workers > 1:
            ratio += f", {_middle([r.hubs[workers][0].rate / r.hubs[1][0].rate for r in rounds])} x one worker"
        measure = f"hub, {workers} worker(s), 16 concurrent clients{_of(rounds)}"
        rows.append(_latency_row(measure, result, ratio, load=_loads(rounds, f"w{workers}")))
        rows.append(Row(f"  where the CPU went ({workers} worker(s))", share.describe()))
    for workers in range(2, arguments.workers_max + 1):  # what this machine allows, from the one-worker costs
        bound = one_worker[1].workers_bound(workers) / one_worker[0].rate
        measure = f"  most {workers} workers could reach on {os.cpu_count()} CPUs at these costs"
        rows.append(Row(measure, f"{bound:.2f} x one worker", ratio="bench and PostgreSQL share the CPUs"))
    if not arguments.no_mesh:
        meshes = [r.mesh for r in rounds if r.mesh is not None]
        measure = f"NHS England mesh-sandbox (file store) + mesh-client, one sequential sender{_of(rounds)}"
        ratio = _middle([r.sequential[0].rate / r.mesh for r in rounds if r.mesh])
        rows.append(
            Row(
                measure,
                f"{statistics.median(meshes):,.0f} sends/s",
                ratio=f"hub sequential = {ratio} x MESH",
                load=_loads(rounds, "mesh"),
            )
        )
    half = one_worker[0].rate / 2
    with console.status(f"hub: one worker at half its maximum ({half:,.0f}/s, open loop)"):
        steady = await latency_phase(server, network, rate=half, count=max(200, int(half * 10)))
    measure = f"hub, one worker, open loop at {half:,.0f}/s (half of max)"
    rows.append(_latency_row(measure, steady, "p99 aim < 50 ms", load=f"{_load():.1f}"))
    with console.status("where one message's CPU goes, stage by stage (in this process)"):
        stages = await asyncio.to_thread(stage_costs, directory)  # its own event loop, for the seal
    rows += stage_rows(stages, one_worker[1], ceiling_round.ceiling)
    if not arguments.no_instructions:
        rows += await instruction_rows(server, network, one_worker[1], ceiling_round, stages)
    return rows


async def instruction_rows(
    server: str, network: BenchNetwork, hub: CpuShare, ceiling: Round, stages: list[StageCost]
) -> list[Row]:
    """Instructions per message (callgrind) for the one-worker hub and the ceiling, and how many of them each runs
    per second of the CPU this run measured: the hub's distance from 0.8 of the ceiling as work and as speed."""
    if not callgrind_available():
        return [Row("  instructions per message", "not counted: valgrind is not installed")]
    with console.status("instructions per message: hub and ceiling under callgrind"):
        counted = await instructions(server, network)
    # Billions of instructions per CPU second: millions per message over milliseconds of CPU per message.
    hub_speed, ceiling_speed = counted.hub / hub.hub_ms, counted.ceiling / (ceiling.ceiling_cpu / 1e3)
    allowed = hub_speed * 1e3 / (0.8 * ceiling.ceiling)  # millions, in the per-message budget for 0.8
    return [
        Row(
            f"  instructions per message (callgrind, {counted.messages} messages): hub, one worker, 16 clients",
            f"{counted.hub:.2f} M",
            ratio=f"ceiling: {counted.ceiling:.2f} M",
        ),
        Row(
            "  billion instructions per CPU second (this run's CPU per message)",
            f"hub {hub_speed:.2f}",
            ratio=f"ceiling: {ceiling_speed:.2f} ({ceiling.ceiling_cpu:,.0f} µs CPU per message)",
        ),
        Row(
            "  hub instructions per message allowed for 0.8 of the ceiling at the hub's own speed",
            f"{allowed:.2f} M",
            ratio=f"executed: {counted.hub:.2f} M",
        ),
    ] + [
        Row(
            f"  stage instructions: {cost.name}",
            f"{counted.stages[cost.name]:.2f} M",
            ratio=f"{counted.stages[cost.name] * 1e3 / cost.microseconds:.2f} billion per CPU second in-process",
        )
        for cost in stages
        if cost.name in counted.stages and cost.microseconds > 0
    ]


def stage_rows(stages: list[StageCost], hub: CpuShare, ceiling: float) -> list[Row]:
    """The arithmetic: each CPU-only stage's microseconds per message (bench/load_stages.py), what is left of the
    one-worker hub's CPU per message, and what the hub may spend per message to reach 0.8 of the ceiling."""
    rows = [
        Row(f"  stage: {cost.name}", f"{cost.microseconds:,.0f} µs", ratio=f"range {cost.low:,.0f}-{cost.high:,.0f}")
        for cost in stages
    ]
    by_name = {cost.name: cost.microseconds for cost in stages}
    staged = by_name.get(HUB_STAGES_IN_TURN, sum(by_name[name] for name in HUB_STAGES if name in by_name))
    rest = 1000 * hub.hub_ms - staged
    rows.append(
        Row(
            "  rest of the hub's CPU: HTTP, PostgreSQL round trips, episodes",
            f"{rest:,.0f} µs",
            ratio="the hub's CPU less its four stages one after another",
        )
    )
    budget = 1e6 / (0.8 * ceiling)
    rows.append(
        Row(
            "  hub CPU per message allowed for 0.8 of the ceiling (one worker)",
            f"{budget:,.0f} µs",
            ratio=f"spent: {1000 * hub.hub_ms:,.0f} µs",
        )
    )
    return rows


HUB_STAGES = ("bearer token verified", "read once + patient + profiles", "payload sealed", "receipt built and signed")
"""The stages that together are the hub's CPU-only work on a message (the others are parts of these, or the
ceiling's)."""


def _of(rounds: list[Round]) -> str:
    return f", median of {len(rounds)} rounds" if len(rounds) > 1 else ""


def _loads(rounds: list[Round], measure: str) -> str:
    """The load averages at the end of `measure` in each round."""
    return " / ".join(f"{r.loads[measure]:.1f}" for r in rounds if measure in r.loads)


def _latency_row(measure: str, result: LoadResult, ratio: str = "", *, load: str = "") -> Row:
    p50, p99 = f"{result.percentile(0.5):.1f} ms", f"{result.percentile(0.99):.1f} ms"
    return Row(measure, f"{result.rate:,.0f} accepted/s", p50, p99, ratio, load)


async def push_rows(server: str, directory: Path) -> list[Row]:
    with console.status("accepted → pushed to a live recipient"):
        delays = sorted(await push_phase(server, directory, count=200))
    p50, p99 = 1000 * statistics.median(delays), 1000 * delays[int(0.99 * len(delays)) - 1]
    measure = "accepted → pushed to a waiting recipient (200, sequential)"
    return [Row(measure, f"{len(delays)} pushed", f"{p50:.1f} ms", f"{p99:.1f} ms", "p50 aim < 100 ms")]


async def growth_rows(server: str, network: BenchNetwork, arguments: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    with console.status("growth: cost per message from 4 KB to 2 MB, one sequential client"):
        points = await cost_by_size(server, network, per_size=arguments.per_size)
    fixed, per_mb = linear_fit(points)
    for size, seconds in points:
        predicted = fixed + per_mb * size / (1024 * 1024)
        measure = f"growth: {size / 1024:,.0f} KB message, one sequential client"
        rows.append(Row(measure, f"{1000 * seconds:.1f} ms/msg", ratio=f"fit {1000 * predicted:.1f} ms"))
    rows.append(Row("growth: least-squares line", f"{1000 * fixed:.1f} ms + {1000 * per_mb:.0f} ms/MB"))
    entries, count = arguments.log_entries, arguments.messages
    rates: dict[str, list[float]] = {"empty": [], "full": []}
    for label, size in (("empty", 0), ("full", entries), ("empty", 0)):  # interleaved: the machine may drift
        with console.status(f"growth: 16 clients, audit log of {size:,} entries"):
            rates[label].append((await throughput_with_log(server, network, entries=size, count=count)).rate)
    empty = statistics.mean(rates["empty"])
    rows.append(Row("growth: 16 clients, empty audit log (before, after)", f"{empty:,.0f} accepted/s"))
    rows.append(
        Row(
            f"growth: 16 clients, log of {entries:,} entries",
            f"{rates['full'][0]:,.0f} accepted/s",
            ratio=f"{rates['full'][0] / empty:.2f} x empty log",
        )
    )
    return rows


async def main(arguments: argparse.Namespace) -> int:
    directory = Path(tempfile.mkdtemp(prefix="handover-load-"))
    server, cluster = bench_server()
    if cluster is not None:  # PostgreSQL's CPU: this cluster's processes only, not other servers on the machine
        use_postgres_server(cluster.data_dir)
    rows: list[Row] = []
    try:
        network = BenchNetwork.create(directory / "network")
        rows += await throughput_rows(server, directory, network, arguments)
        rows += await push_rows(server, directory)
        if arguments.growth:
            rows += await growth_rows(server, network, arguments)
    except Exception as exc:  # noqa: BLE001 - report any failure as the script's result, with a non-zero status
        _print(rows)
        console.print(f"[red]benchmark failed: {type(exc).__name__}: {exc}[/red] (logs in {directory})")
        return 1
    finally:
        if cluster is not None and cluster.started_here:
            cluster.stop()
    _print(rows)
    return 0


def _print(rows: list[Row]) -> None:
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    table = Table(title=f"Handover intake load, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine}")
    for heading in ("measure", "figure", "p50", "p99", "ratio", "load"):
        table.add_column(heading, justify="left" if heading in ("measure", "ratio") else "right")
    for row in rows:
        table.add_row(row.measure, row.figure, row.p50, row.p99, row.ratio, row.load)
    console.print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1500, help="timed messages per concurrent phase")
    parser.add_argument("--workers-max", type=int, default=2, help="measure 1..N workers (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the compared measures (3)")
    parser.add_argument("--no-mesh", action="store_true", help="skip the MESH sandbox peer")
    parser.add_argument("--no-instructions", action="store_true", help="skip counting instructions (callgrind)")
    parser.add_argument("--growth", action="store_true", help="also: message sizes 4 KB-2 MB and a large audit log")
    parser.add_argument("--per-size", type=int, default=20, help="messages timed per size (default 20)")
    parser.add_argument("--log-entries", type=int, default=1_000_000, help="pre-loaded log (default 1,000,000)")
    sys.exit(asyncio.run(main(parser.parse_args())))
