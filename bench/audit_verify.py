"""Benchmark of the audit log: appending, rebuilding the tree, and `handover audit verify`, in leaves/s, next to
raw SHA-256 node hashing measured in the same run.

    .venv/bin/python bench/audit_verify.py [--entries 1000000] [--appends 2000]

Uses HANDOVER_BENCH_DATABASE_URL (a server DSN; a scratch database is created and dropped) or a private
embedded cluster under var/bench. Entries are realistic leaves (RFC 8785 JSON of acceptance events, ~400
bytes) made from a template checked byte for byte against `AuditEvent.leaf()`, bulk-loaded with COPY; the set-up
time is printed but not part of any rate. Prints a table; the figure to watch is the verify rate with one worker
process per CPU as a fraction of raw node hashing (aim: at least one third), with the compiled helper where it is
built (setup.py); the same with its pure-Python twins, and the sequential reader, are beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.auditlog import merkle, treehash  # noqa: E402
from service.auditlog.appending import append_event  # noqa: E402
from service.auditlog.checkpoints import CheckpointSigner  # noqa: E402
from service.auditlog.events import AuditEvent, EventType  # noqa: E402
from service.auditlog.export import export_log  # noqa: E402
from service.auditlog.tree import AuditTree, MerkleTree  # noqa: E402
from service.auditlog.verify_cli import verify_database, verify_export  # noqa: E402
from service.identity.keystore import init_keys, load_private_jwk  # noqa: E402
from service.identity.notes import NoteSigner, log_origin  # noqa: E402
from service.identity.registry import load_registry  # noqa: E402
from service.store import db  # noqa: E402
from service.store.embedded import ensure_cluster  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)
COLUMNS = ["seq", "event_type", "outcome", "actor", "message_id", "recorded_at", "leaf", "leaf_hash"]


def event(number: int) -> AuditEvent:
    return AuditEvent(
        type=EventType.MESSAGE_ACCEPTED,
        outcome="accepted",
        actor="RM1",
        at=T0 + timedelta(milliseconds=number),
        message_id=uuid.UUID(int=number + 1),
        details={
            "sender": "RM1",
            "recipient": "RGT",
            "event": "referral",
            "bundle_identifier": f"urn:uuid:{uuid.UUID(int=number + 7)}",
            "payload_sha256": hashlib.sha256(number.to_bytes(8, "big")).hexdigest(),
            "request_id": str(uuid.UUID(int=number + 13)),
        },
    )


_LEAF = (
    '{{"actor":"RM1","at":"{at}","details":{{"bundle_identifier":"urn:uuid:{bundle}","event":"referral",'
    '"payload_sha256":"{sha}","recipient":"RGT","request_id":"{request}","sender":"RM1"}},'
    '"message_id":"{message}","outcome":"accepted","type":"message-accepted"}}'
)


def fast_leaf(number: int) -> tuple[uuid.UUID, datetime, bytes]:
    """`event(number)`'s message id, time and leaf bytes, by template (the RFC 8785 form of these events is fixed
    but for the values): about twenty times faster than building the event. `check_fast_leaves` proves them equal."""
    message_id, at = uuid.UUID(int=number + 1), T0 + timedelta(milliseconds=number)
    leaf = _LEAF.format(
        at=at.isoformat(timespec="microseconds"),
        bundle=uuid.UUID(int=number + 7),
        sha=hashlib.sha256(number.to_bytes(8, "big")).hexdigest(),
        request=uuid.UUID(int=number + 13),
        message=message_id,
    )
    return message_id, at, leaf.encode("ascii")


def check_fast_leaves(numbers: range) -> None:
    for number in numbers:
        if fast_leaf(number)[2] != event(number).leaf():
            raise AssertionError(f"the leaf template differs from AuditEvent.leaf() at {number}")


def rows(start: int, end: int) -> Iterator[tuple[object, ...]]:
    kind = EventType.MESSAGE_ACCEPTED.value
    for number in range(start, end):
        message_id, at, leaf = fast_leaf(number)
        yield number, kind, "accepted", "RM1", message_id, at, leaf, merkle.hash_leaf(leaf)


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def raw_node_hashing(count: int) -> float:
    left, right, sha256 = hashlib.sha256(b"l").digest(), hashlib.sha256(b"r").digest(), hashlib.sha256
    started = time.perf_counter()
    for _ in range(count):
        left = sha256(b"\x01" + left + right).digest()
    return rate(count, time.perf_counter() - started)


async def scratch_database(server: str) -> str:
    name = f"handover_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(_with_db(server, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = _with_db(server, name)
    await db.migrate(dsn)
    return dsn


async def drop_database(server: str, dsn: str) -> None:
    admin = await asyncpg.connect(_with_db(server, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{urlsplit(dsn).path.lstrip("/")}" WITH (FORCE)')
    finally:
        await admin.close()


async def bulk_load(dsn: str, start: int, end: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for chunk in range(start, end, 50_000):
            await conn.copy_records_to_table(
                "audit_events", records=rows(chunk, min(end, chunk + 50_000)), columns=COLUMNS
            )
    finally:
        await conn.close()


async def sign(dsn: str, signer: NoteSigner) -> tuple[int, float]:
    """Rebuild the tree from the store as a starting service does (timed), then sign a checkpoint."""
    pool = await db.create_pool(dsn, max_size=2)
    try:
        started = time.perf_counter()
        async with db.connection(pool) as conn:
            tree = await AuditTree.load(conn)
        seconds = time.perf_counter() - started
        await CheckpointSigner(pool, tree, signer, interval_seconds=3600).sign_if_due(force=True)
        return tree.size, seconds
    finally:
        await pool.close()


def in_memory_append() -> float:
    tree, hashes = MerkleTree(), [merkle.hash_leaf(e.leaf()) for e in map(event, range(200_000))]
    started = time.perf_counter()
    for digest in hashes:
        tree.append(digest)
    return rate(len(hashes), time.perf_counter() - started)


async def database_appends(dsn: str, appends: int) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        for number in range(appends):
            async with conn.transaction():
                await append_event(conn, event(number))
        return rate(appends, time.perf_counter() - started)
    finally:
        await conn.close()


async def main(entries: int, appends: int) -> None:  # noqa: PLR0915 - one straight script
    results: list[tuple[str, str]] = []
    node_rate = raw_node_hashing(2_000_000)
    results.append(("raw SHA-256 node hashing (0x01||l||r)", f"{node_rate:,.0f} nodes/s"))
    results.append(("in-memory tree append (leaf hash given)", f"{in_memory_append():,.0f} leaves/s"))

    bench_dir = Path(tempfile.mkdtemp(prefix="handover-bench-"))
    server = os.environ.get("HANDOVER_BENCH_DATABASE_URL")
    cluster = None
    if not server:
        cluster = ensure_cluster(ROOT / "var" / "bench", log=lambda line: None)
        server = cluster.dsn
    dsn = await scratch_database(server)
    try:
        network = bench_dir / "network.json"
        shutil.copy(ROOT / "keys" / "network.json", network)
        init_keys(network, bench_dir / "private")
        registry = load_registry(network)
        signer = NoteSigner(load_private_jwk(bench_dir / "private", "hub"), log_origin(registry.network))

        appended = await database_appends(dsn, appends)
        results.append((f"append_event, one transaction each ({appends})", f"{appended:,.0f} events/s"))
        await drop_database(server, dsn)
        dsn = await scratch_database(server)

        check_fast_leaves(range(0, entries, max(1, entries // 1000)))  # the template is AuditEvent.leaf() exactly
        started = time.perf_counter()
        await bulk_load(dsn, 0, entries // 2)
        await sign(dsn, signer)
        await bulk_load(dsn, entries // 2, entries)
        size, load_seconds = await sign(dsn, signer)
        loaded = time.perf_counter() - started
        results.append((f"set-up: {size:,} entries generated and loaded (COPY), 2 checkpoints", f"{loaded:,.1f} s"))
        results.append(
            (f"tree rebuild at start from the store ({size:,})", f"{rate(size, load_seconds):,.0f} leaves/s")
        )

        cpus = os.cpu_count() or 1
        hashing = "compiled hashing" if treehash.COMPILED else "pure-Python hashing: the helper is not built"
        readers = [(f"fast path, {cpus} worker processes, {hashing}", cpus, "")]
        if treehash.COMPILED:
            readers.append((f"fast path, {cpus} worker processes, pure-Python hashing", cpus, "python"))
        readers.append(("one process, sequential", 0, ""))
        for label, workers, twins in readers:
            os.environ["HANDOVER_TREEHASH"] = twins  # read by each worker process as it starts
            started = time.perf_counter()
            report = await verify_database(dsn, registry, [], [], workers=workers)
            seconds = time.perf_counter() - started
            os.environ.pop("HANDOVER_TREEHASH")
            assert report.ok, report.divergences
            assert report.tree_size == entries
            verify_rate = rate(entries, seconds)
            results.append((f"audit verify from the database ({entries:,}), {label}", f"{verify_rate:,.0f} leaves/s"))
            results.append(("  as a fraction of raw node hashing", f"{verify_rate / node_rate:.2f}"))

        conn = await asyncpg.connect(dsn)
        try:
            started = time.perf_counter()
            await export_log(conn, bench_dir / "export")
            results.append(("audit export", f"{rate(entries, time.perf_counter() - started):,.0f} leaves/s"))
        finally:
            await conn.close()
        started = time.perf_counter()
        report = verify_export(bench_dir / "export", registry, [], [])
        seconds = time.perf_counter() - started
        assert report.ok, report.divergences
        results.append((f"audit verify from an export ({entries:,})", f"{rate(entries, seconds):,.0f} leaves/s"))
        results.append(("  as a fraction of raw node hashing", f"{rate(entries, seconds) / node_rate:.2f}"))
    finally:
        await drop_database(server, dsn)
        shutil.rmtree(bench_dir, ignore_errors=True)
        if cluster is not None and cluster.started_here:
            cluster.stop()
    width = max(len(name) for name, _ in results)
    for name, value in results:
        print(f"{name:<{width}}  {value:>20}")


def _with_db(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--appends", type=int, default=2_000)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.entries, arguments.appends))
