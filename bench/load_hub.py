"""A real `handover serve` for a load run (its own scratch database, a copy of the network with fresh keys, a
free port, its logs in a file) and the clients that load it: closed-loop (N clients, each sending as soon as
its last answer came back) and open-loop (a fixed arrival rate, for latency at a given throughput).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

from bench.load_messages import Request
from service.identity.keystore import init_keys
from service.identity.registry import Registry, load_registry
from service.store import db
from service.store.embedded import EmbeddedCluster, ensure_cluster

ROOT = Path(__file__).resolve().parents[1]
HANDOVER = str(Path(sys.executable).parent / "handover")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def bench_server() -> tuple[str, EmbeddedCluster | None]:
    """HANDOVER_BENCH_DATABASE_URL (a server DSN), else the embedded cluster under var/bench (returned, to stop
    at the end if this run started it)."""
    server = os.environ.get("HANDOVER_BENCH_DATABASE_URL")
    if server:
        return server, None
    cluster = ensure_cluster(ROOT / "var" / "bench", log=lambda line: None)
    return cluster.dsn, cluster


@asynccontextmanager
async def scratch_database(server: str, *, migrated: bool = True) -> AsyncIterator[str]:
    """A new database on `server` for one measurement, dropped afterwards."""
    name = f"handover_load_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(with_database(server, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = with_database(server, name)
    try:
        if migrated:
            await db.migrate(dsn)
        yield dsn
    finally:
        admin = await asyncpg.connect(with_database(server, "postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@dataclass(frozen=True)
class BenchNetwork:
    """A copy of keys/network.json with freshly made keys, optionally with the centre receiving by push."""

    directory: Path
    network_path: Path
    keys_dir: Path

    @classmethod
    def create(cls, directory: Path, *, centre_endpoint: str | None = None) -> BenchNetwork:
        directory.mkdir(parents=True, exist_ok=True)
        network_path = directory / "network.json"
        shutil.copy(ROOT / "keys" / "network.json", network_path)
        keys_dir = directory / "private"
        init_keys(network_path, keys_dir)
        if centre_endpoint is not None:
            doc = json.loads(network_path.read_text(encoding="utf-8"))
            centre = load_registry(network_path).centre().ods
            doc["participants"][centre]["endpoint"] = centre_endpoint
            network_path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
        return cls(directory, network_path, keys_dir)

    @property
    def registry(self) -> Registry:
        return load_registry(self.network_path)


@asynccontextmanager
async def running_hub(network: BenchNetwork, dsn: str, *, workers: int, log_name: str) -> AsyncIterator[str]:
    """`handover serve --workers N` on a free port until the block ends; yields its base URL."""
    async with hub_process(network, dsn, workers=workers, log_name=log_name) as hub:
        yield hub.base


@dataclass(frozen=True)
class HubProcess:
    base: str
    pid: int
    log_path: Path


@asynccontextmanager
async def hub_process(
    network: BenchNetwork,
    dsn: str,
    *,
    workers: int,
    log_name: str,
    env: Mapping[str, str] | None = None,
    wrapper: Sequence[str] = (),
    ready_within: float = 90.0,
) -> AsyncIterator[HubProcess]:
    """`running_hub`, with more settings in `env`, yielding the process too (the soak samples its memory);
    `wrapper` is a command it runs under (valgrind, for bench/load_instructions.py), which may slow its start."""
    port = free_port()
    environment = {
        **os.environ,
        "HANDOVER_DATABASE_URL": dsn,
        "HANDOVER_LISTEN": f"127.0.0.1:{port}",
        "HANDOVER_NETWORK": str(network.network_path),
        "HANDOVER_KEYS_DIR": str(network.keys_dir),
        "HANDOVER_VAR_DIR": str(network.directory / "var"),
        "HANDOVER_RELAY_POLL_SECONDS": "1",
        **(env or {}),
    }
    log_path = network.directory / f"{log_name}.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            *wrapper, HANDOVER, "serve", "--workers", str(workers), env=environment, stdout=log, stderr=log, cwd=ROOT
        )
        try:
            base = f"http://127.0.0.1:{port}"
            await _wait_ready(base, proc, within=ready_within)
            yield HubProcess(base, proc.pid, log_path)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _wait_ready(base: str, proc: asyncio.subprocess.Process, within: float = 90.0) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"handover serve exited with {proc.returncode}; see its log")
            try:
                async with session.get(f"{base}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("handover serve did not become ready")


@dataclass(frozen=True)
class LoadResult:
    """What one load phase saw: answers by status, latencies of the accepted, and the wall time."""

    accepted: int
    statuses: dict[int, int]
    latencies: list[float]
    seconds: float
    accepted_at: dict[str, float]

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, fraction: float) -> float:
        """Latency in milliseconds at `fraction` (0.5, 0.99) of the accepted requests."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    @property
    def median_ms(self) -> float:
        return 1000 * statistics.median(self.latencies) if self.latencies else float("nan")


async def closed_loop(base: str, requests: Sequence[Request], *, clients: int) -> LoadResult:
    """`clients` concurrent senders, each posting its next request as soon as the last was answered."""
    return await _drive(base, requests, clients=clients, interval=None)


async def open_loop(base: str, requests: Sequence[Request], *, rate: float) -> LoadResult:
    """Requests started at a fixed `rate` per second whatever the answers (latency at a set throughput)."""
    return await _drive(base, requests, clients=len(requests), interval=1 / rate)


async def _drive(base: str, requests: Sequence[Request], *, clients: int, interval: float | None) -> LoadResult:
    url = f"{base}/fhir/$process-message"
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    accepted_at: dict[str, float] = {}
    queue = list(reversed(requests))
    connector = aiohttp.TCPConnector(limit=min(clients, 64))
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(request: Request) -> None:
            sent = time.perf_counter()
            async with session.post(url, data=request.body, headers=request.headers()) as resp:
                await resp.read()
                done = time.perf_counter()
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
                if resp.status == 202:
                    latencies.append(done - sent)
                    accepted_at[request.identifier] = time.time()

        async def client() -> None:
            while queue:
                await post(queue.pop())

        started = time.perf_counter()
        if interval is None:
            await asyncio.gather(*(client() for _ in range(clients)))
        else:
            tasks = []
            for number, request in enumerate(requests):
                delay = started + number * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(post(request)))
            await asyncio.gather(*tasks)
        seconds = time.perf_counter() - started
    return LoadResult(statuses.get(202, 0), statuses, latencies, seconds, accepted_at)
