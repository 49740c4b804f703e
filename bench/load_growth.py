"""Growth (issue 12 item 5): does the cost of a message grow linearly with its size, and does throughput hold
as the audit log grows?

Sizes: the contract referral padded, through `ServiceRequest.note`, to about 4 KB, 64 KB, 512 KB and 2 MB
(the 10 MB body limit stays); each is sent by one sequential client and timed per message. Log: the same
16-client load against an empty log and against one pre-loaded with `--log-entries` valid audit entries
(bulk COPY; each leaf a realistic acceptance event, so the hub's start-up self-check passes).
"""

from __future__ import annotations

import json
import time
import uuid

import asyncpg

from bench.audit_verify import COLUMNS, rows
from bench.load_hub import BenchNetwork, LoadResult, closed_loop, running_hub, scratch_database
from bench.load_messages import Request, bearer_token, signed_referrals
from service.identity.keystore import load_private_jwk
from service.identity.signing import sign_bundle
from service.strictjson import parse_strict_json

SIZES = (4 * 1024, 64 * 1024, 512 * 1024, 2 * 1024 * 1024)


def padded(network: BenchNetwork, request: Request, size: int) -> Request:
    """`request`'s referral with its note grown so the signed body is about `size` bytes, signed again."""
    bundle = parse_strict_json(request.body)
    bundle.pop("signature")
    service_request = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "ServiceRequest")
    grow = max(0, size - len(request.body))
    words = "Synthetic clinical narrative for load testing only. "
    service_request["note"][0]["text"] += (words * (grow // len(words) + 1))[:grow]
    key = load_private_jwk(network.keys_dir, request.sender)
    body = json.dumps(sign_bundle(bundle, key, request.sender), ensure_ascii=False).encode("utf-8")
    return Request(request.sender, request.identifier, body, bearer_token(request.sender, key), str(uuid.uuid4()))


async def cost_by_size(server: str, network: BenchNetwork, *, per_size: int) -> list[tuple[int, float]]:
    """(body bytes, median seconds per accepted message) for each size, one sequential client."""
    found: list[tuple[int, float]] = []
    async with scratch_database(server) as dsn, running_hub(network, dsn, workers=1, log_name="growth") as base:
        registry = network.registry
        await closed_loop(base, signed_referrals(registry, network.keys_dir, 20, seed=800_000), clients=1)
        for number, size in enumerate(SIZES):
            plain = signed_referrals(registry, network.keys_dir, per_size, seed=100_000 * (number + 1))
            requests = [padded(network, request, size) for request in plain]
            result = await closed_loop(base, requests, clients=1)
            if result.accepted != len(requests):
                raise RuntimeError(f"{size} B messages: not every one was accepted: {result.statuses}")
            found.append((len(requests[0].body), result.median_ms / 1000))
    return found


async def preload_log(dsn: str, entries: int) -> float:
    """COPY `entries` valid audit entries into an empty log; returns the seconds it took (not timed as load)."""
    started = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table("audit_events", records=rows(0, entries), columns=COLUMNS)
        await conn.execute("VACUUM ANALYZE audit_events")  # settled, as a long-running hub's table would be
        await conn.execute("CHECKPOINT")  # the bulk load's WAL flushed before anything is timed
    finally:
        await conn.close()
    return time.perf_counter() - started


async def throughput_with_log(server: str, network: BenchNetwork, *, entries: int, count: int) -> LoadResult:
    """16 clients against a hub whose audit log already holds `entries` entries."""
    async with scratch_database(server) as dsn:
        if entries:
            await preload_log(dsn, entries)
        async with running_hub(network, dsn, workers=1, log_name=f"log{entries}") as base:
            registry = network.registry
            await closed_loop(base, signed_referrals(registry, network.keys_dir, 100, seed=700_000), clients=16)
            result = await closed_loop(base, signed_referrals(registry, network.keys_dir, count), clients=16)
            if result.accepted != count:
                raise RuntimeError(f"log of {entries}: not every message was accepted: {result.statuses}")
            return result


def linear_fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares seconds = fixed + per_byte * bytes; returns (fixed seconds, seconds per MB)."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _ in points)
    return mean_y - slope * mean_x, slope * 1024 * 1024
