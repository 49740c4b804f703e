"""`make bench-failover` (issue 27, item 3): what a failover of a real Patroni cluster costs the hubs' clients.

The cluster of tests/ha (etcd, two PostgreSQL 15 nodes under Patroni in synchronous mode, HAProxy checking
GET /primary) and two hubs: A on the multi-host DSN (target_session_attrs=read-write), B through HAProxy. Sixteen
careful clients send signed referrals over both hubs (a 503 is retried on the other hub with the same
X-Request-ID). Each round, with the test timings (ttl 20 s, loop_wait 1 s, retry_timeout 5 s) and with the
timings recommended for production (Patroni's defaults: ttl 30 s, loop_wait 10 s, retry_timeout 10 s):

* kill: the leader node SIGKILLed (Patroni and PostgreSQL) after a third of the messages are receipted; then
  it is started again and rejoins (pg_rewind) before the next run;
* switchover: `POST /switchover` to the replica after a third are receipted.

Printed per run (median and range over the rounds): messages lost (receipted but not stored exactly once on the
final primary; must be 0), 503s answered, fault → promotion, promotion → first 202 through each hub, and
fault → first 202.

    .venv/bin/python -m bench.failover [--rounds 3] [--messages 300] [--timings test production]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from service.crypto.kek import create_kek_file
from tests.ha.checks import check_stored_once
from tests.ha.cluster import PRODUCTION_TIMINGS, TEST_TIMINGS, PatroniCluster, missing_parts
from tests.ha.hubs import HubProcess, hub_env, start_hub
from tests.ha.traffic import PrimaryWatch, Traffic, wait_until
from tests.support.hub import Network, free_port

TIMINGS = {"test": TEST_TIMINGS, "production": PRODUCTION_TIMINGS}
HUB_SETTINGS = {"HANDOVER_CHECKPOINT_SECONDS": "1", "HANDOVER_INTAKE_DATABASE_TIMEOUT_SECONDS": "2"}


@dataclass(frozen=True)
class Run:
    kind: str
    timings: str
    lost: int
    unavailable: int
    to_promotion: float
    promotion_to_202_a: float
    promotion_to_202_b: float
    fault_to_202: float


async def one_run(
    cluster: PatroniCluster,
    hubs: tuple[HubProcess, HubProcess],
    network: Network,
    *,
    kind: str,
    timings: str,
    count: int,
) -> Run:
    leader = cluster.primary()
    assert leader is not None
    replica = next(n for n in cluster.nodes if n is not leader)
    traffic = Traffic(network, [hubs[0].base_url, hubs[1].base_url], clients=16)
    messages = traffic.messages(count)
    async with PrimaryWatch(cluster) as watch:
        sending = asyncio.create_task(traffic.send_all(messages, give_up_after=600))
        await wait_until(lambda: traffic.receipted >= count // 3, "a third receipted", 120)
        fault = time.monotonic()
        if kind == "kill":
            leader.kill_patroni()
            leader.kill_postgres()
        else:
            status, body = await asyncio.to_thread(cluster.switchover, leader, replica)
            assert status == 200, body
        await sending
        promoted = await watch.wait_promoted(fault, replica.name, 120)
    lost = count - sum(1 for m in messages if m.status == 202)
    try:
        await check_stored_once(replica.dsn(), [m for m in messages if m.status == 202])
    except AssertionError as problem:
        print(f"  STORE CHECK FAILED: {problem}", file=sys.stderr)
        lost += 1
    if kind == "kill":
        await asyncio.to_thread(cluster.start_node, leader)
    await asyncio.to_thread(cluster.wait_for, cluster.is_replicating, "the old leader back in sync", 180)

    def after_promotion(hub: HubProcess) -> float:
        first = min(
            (a.at for a in traffic.answers if a.status == 202 and a.hub == hub.base_url and a.at >= promoted),
            default=float("nan"),
        )
        return first - promoted

    first_any = traffic.first_202_after(promoted)
    return Run(
        kind,
        timings,
        lost,
        traffic.count(503) + traffic.count(0),
        promoted - fault,
        after_promotion(hubs[0]),
        after_promotion(hubs[1]),
        (first_any - fault) if first_any is not None else float("nan"),
    )


async def bench(rounds: int, count: int, timing_names: Sequence[str]) -> list[Run]:
    runs: list[Run] = []
    for name in timing_names:
        cluster = PatroniCluster.create(TIMINGS[name])
        hubs: list[HubProcess] = []
        with tempfile.TemporaryDirectory(prefix="bench-failover-") as scratch:
            try:
                await asyncio.to_thread(cluster.start)
                network = Network.create(Path(scratch) / "network")
                kek = Path(scratch) / "kek.key"
                create_kek_file(kek)
                for dsn in (cluster.multi_host_dsn(), cluster.haproxy_dsn()):
                    env = hub_env(network, dsn, free_port(), kek, **HUB_SETTINGS)
                    hubs.append(start_hub(env, Path(scratch) / "logs"))
                for hub in hubs:
                    await asyncio.to_thread(hub.wait_ready)
                for number in range(rounds):
                    for kind in ("kill", "switchover"):
                        run = await one_run(cluster, (hubs[0], hubs[1]), network, kind=kind, timings=name, count=count)
                        print(f"  round {number + 1} {name:<10} {kind:<10} {describe(run)}", file=sys.stderr)
                        runs.append(run)
                for hub in hubs:
                    assert hub.proc.poll() is None, "a hub died during the bench"
            finally:
                for hub in hubs:
                    hub.stop()
                cluster.close()
    return runs


def describe(run: Run) -> str:
    return (
        f"lost {run.lost}, 503s {run.unavailable}, to promotion {run.to_promotion:.1f} s, "
        f"promotion→202 A {run.promotion_to_202_a:.2f} s B {run.promotion_to_202_b:.2f} s, "
        f"fault→202 {run.fault_to_202:.1f} s"
    )


def spread(values: Sequence[float], digits: int) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f} to {max(values):.{digits}f})"


def table(runs: Sequence[Run]) -> str:
    head = (
        "| run | Patroni timings | lost | 503s | fault → promotion (s) | promotion → first 202, hub A multi-host "
        "(s) | promotion → first 202, hub B HAProxy (s) | fault → first 202 (s) |"
    )
    lines = [head, "|" + "---|" * 8]
    for timings in dict.fromkeys(r.timings for r in runs):
        for kind in ("kill", "switchover"):
            group = [r for r in runs if r.timings == timings and r.kind == kind]
            if not group:
                continue
            ttl = TIMINGS[timings]
            lines.append(
                f"| {kind} | {timings} (ttl {ttl['ttl']}, loop_wait {ttl['loop_wait']}, retry {ttl['retry_timeout']})"
                f" | {max(r.lost for r in group)} | {spread([r.unavailable for r in group], 0)}"
                f" | {spread([r.to_promotion for r in group], 1)} | {spread([r.promotion_to_202_a for r in group], 2)}"
                f" | {spread([r.promotion_to_202_b for r in group], 2)}"
                f" | {spread([r.fault_to_202 for r in group], 1)} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--timings", nargs="+", choices=sorted(TIMINGS), default=["test", "production"])
    args = parser.parse_args(argv)
    missing = missing_parts()
    if missing:
        print(f"bench-failover needs {', '.join(missing)}", file=sys.stderr)
        return 2
    runs = asyncio.run(bench(args.rounds, args.messages, args.timings))
    print(
        f"\nFailover of a two-node Patroni cluster under {args.messages} referrals from 16 clients over two hubs;"
        f" median (range) over {args.rounds} rounds.\n"
    )
    print(table(runs))
    return 1 if any(r.lost for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
