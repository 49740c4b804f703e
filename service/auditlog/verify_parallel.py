"""`handover audit verify`'s fast path: the log read and hashed in aligned chunks by several processes at once.

The parent exports its REPEATABLE READ snapshot (`pg_export_snapshot`, as `pg_dump -j` does); each worker process
imports it, so every chunk comes from the same state of the log as the checkpoints the parent read. A worker
reads its chunk of 2^CHUNK_LEVEL entries as one binary COPY of (leaf_hash, leaf) in index order, so no Python
object is built per row: `treehash` (compiled where it could be built) reads the rows of each block as it arrives,
recomputes every leaf hash, and builds the chunk's tree levels; the stored hashes are compared with the recomputed
ones in bulk. It sends back only small things: the chunk's peaks (one hash for a whole chunk), the peaks at every
checkpoint size that falls inside it, and the leaves that receipts name. `log_check.LogCheck.consume_chunk`
joins them in order; because chunks are aligned, a whole chunk is one perfect subtree of the log.

The fast path proves a log whole, or gives way: it applies to a dense log only (count = max index + 1), and
declines (`FastPathDeclined`) when a stored leaf hash differs from the recomputed one. `verify_cli` then
reads the log again, sequentially and in the same snapshot, and reports every divergence at its index. Workers
are fresh interpreters started as `python -m service.auditlog.verify_worker` (not forked from a process with an
event loop and threads, nor spawned by multiprocessing, which would import the caller's whole program again in
each), importing only asyncpg and the verifier's arithmetic; jobs go to them on stdin, results come back on
stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import asyncpg

from service.auditlog import treehash, verifier

CHUNK_LEVEL = 16
"""Chunks of 65,536 entries: large enough that a worker's start-up and connection are noise."""
_SNAPSHOT = re.compile(r"[0-9A-F]{1,16}(-[0-9A-F]{1,16}){1,3}")
_ROWS = "SELECT leaf_hash, leaf FROM audit_events WHERE seq >= {start} AND seq < {end} ORDER BY seq"
_CLAIMED = "SELECT seq, leaf FROM audit_events WHERE seq = any($1::bigint[])"


@dataclass(frozen=True)
class ChunkJob:
    """Entries start..end-1 (start a multiple of 2^level), read in `snapshot` from `dsn`."""

    dsn: str
    snapshot: str
    start: int
    end: int
    sizes: tuple[int, ...] = ()
    """Tree sizes with start < size <= end whose root the parent must check: the peaks at each are returned."""
    claimed: tuple[int, ...] = ()
    """Indexes in the chunk whose leaf bytes the parent needs (receipts name them)."""


@dataclass
class ChunkResult:
    start: int
    rows: int = 0
    peaks: tuple[bytes, ...] = ()
    at_sizes: dict[int, tuple[bytes, ...]] = field(default_factory=dict)
    leaves: dict[int, tuple[bytes, bytes]] = field(default_factory=dict)
    """Claimed index -> (leaf bytes, leaf hash)."""
    declined: str = ""
    """Why the worker gave way (FastPathDeclined), if it did."""


class FastPathDeclined(Exception):  # noqa: N818 - a decision, not a failure
    """The fast path cannot prove this log whole (an index is missing, a leaf hash differs, or a leaf a receipt names
    is not the one hashed): read it sequentially, which reports each divergence at its index."""


class _CopyHasher:
    """Takes one chunk's binary COPY of (leaf_hash, leaf) as it arrives (`receive`, asyncpg's COPY sink) and hashes
    each piece there and then: asyncpg reads no more while its sink works, and the server fills the socket's buffers
    meanwhile. (Hashing in a thread, so that the loop could receive meanwhile, took five times the CPU when two
    workers shared two cores with their server processes.)"""

    def __init__(self) -> None:
        self._rest = b""
        self._header = False
        self.stored: list[bytes] = []
        self.digests: list[bytes] = []

    async def receive(self, block: bytes) -> None:
        data, offset = self._rest + block, 0
        if not self._header:
            offset = treehash.copy_header_length(data)
            if not offset:
                self._rest = data
                return
            self._header = True
        end, stored, digests = treehash.copy_rows(data, offset)
        self.stored.append(stored)
        self.digests.append(digests)
        self._rest = data[end:]

    def finish(self) -> tuple[bytes, bytes]:
        """(stored leaf hashes, recomputed leaf hashes), each joined, once the whole COPY has arrived."""
        if self._rest != treehash.COPY_TRAILER:
            raise RuntimeError("the COPY of the chunk did not end with its trailer")
        return b"".join(self.stored), b"".join(self.digests)


async def _hash_chunk(job: ChunkJob) -> ChunkResult:
    if not _SNAPSHOT.fullmatch(job.snapshot):
        raise ValueError("not a PostgreSQL snapshot id")
    hasher = _CopyHasher()
    conn = await asyncpg.connect(job.dsn)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            await conn.execute(f"SET TRANSACTION SNAPSHOT '{job.snapshot}'")
            # In index order, never sorted: a table COPYed in moments ago has no statistics yet, and a planner
            # that guesses few rows sorts them, on disk, at several times the cost.
            await conn.execute("SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off")
            rows = _ROWS.format(start=int(job.start), end=int(job.end))
            await conn.copy_from_query(rows, output=hasher.receive, format="binary")
            stored, digests = hasher.finish()
            claimed = await conn.fetch(_CLAIMED, list(job.claimed)) if job.claimed else []
    finally:
        await conn.close()
    count = len(digests) // treehash.DIGEST_SIZE
    if count != job.end - job.start:  # indexes are unique: so an index is missing
        raise FastPathDeclined(f"entries {job.start}..{job.end - 1}: {count} rows, so the log is not dense")
    if stored != digests:  # tampering: the sequential reader reports every divergence, each at its index
        raise FastPathDeclined(f"a leaf hash differs in entries {job.start}..{job.end - 1}")
    levels = treehash.Levels(digests)
    result = ChunkResult(job.start, count, levels.peaks(count))
    result.at_sizes = {size: levels.peaks(size - job.start) for size in job.sizes}
    for index, leaf in claimed:
        digest = levels.leaf(index - job.start)
        if verifier.leaf_hash(leaf) != digest:  # one snapshot read twice, two leaves: never, unless the server errs
            raise FastPathDeclined(f"entry {index} read twice in one snapshot gave two different leaves")
        result.leaves[index] = (leaf, digest)
    return result


def chunk_jobs(
    dsn: str, snapshot: str, size: int, sizes: list[int], claimed: list[int], *, level: int = CHUNK_LEVEL
) -> list[ChunkJob]:
    """The jobs covering a dense log of `size` entries, in order, each told the sizes and claims it holds."""
    width = 1 << level
    jobs = []
    for start in range(0, size, width):
        end = min(size, start + width)
        inside = tuple(s for s in sizes if start < s <= end)
        wanted = tuple(i for i in claimed if start <= i < end)
        jobs.append(ChunkJob(dsn, snapshot, start, end, inside, wanted))
    return jobs


class ChunkConsumer(Protocol):
    """What `read_in_parallel` feeds: `log_check.LogCheck`."""

    @property
    def target_sizes(self) -> Sequence[int]: ...

    @property
    def claimed_indexes(self) -> Sequence[int]: ...

    def consume_chunk(self, chunk: ChunkResult) -> None: ...


async def read_in_parallel(
    conn: asyncpg.Connection,
    dsn: str,
    check: ChunkConsumer,
    *,
    workers: int | None = None,
    level: int = CHUNK_LEVEL,
    advance: Callable[[int], None] = lambda rows: None,
) -> bool:
    """Feed `check` every entry of the log, chunk by chunk in order, read by `workers` processes (default: one per
    CPU) in the snapshot of `conn`'s open REPEATABLE READ transaction. Returns False, having fed nothing, when the
    fast path does not apply: a log that does not start at index 0, or one too small to be worth more than one
    chunk. A log with a gap is found by the worker whose chunk is short (FastPathDeclined): counting the rows
    first would read the whole table once more."""
    first, top = await conn.fetchrow("SELECT min(seq), max(seq) FROM audit_events")
    if first != 0 or top + 1 < 2 << level:
        return False
    snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
    jobs = chunk_jobs(dsn, snapshot, top + 1, list(check.target_sizes), list(check.claimed_indexes), level=level)
    processes = await _start_workers(jobs, min(len(jobs), workers or os.cpu_count() or 1))
    try:
        for number, job in enumerate(jobs):  # worker w has jobs w, w + n, ...: its results come in that order
            result = await _next_result(processes[number % len(processes)])
            if result.declined:
                raise FastPathDeclined(result.declined)
            if (result.start, result.rows) != (job.start, job.end - job.start):
                raise RuntimeError(f"entries {job.start}..{job.end - 1}: read {result.rows} rows")
            check.consume_chunk(result)
            advance(result.rows)
        return True
    finally:
        for process in processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):  # it may end between the check and the kill
                    process.kill()
            await process.wait()


async def _start_workers(jobs: list[ChunkJob], count: int) -> list[asyncio.subprocess.Process]:
    """`python -m service.auditlog.verify_worker` processes (a fresh interpreter importing little), each given its
    share of the jobs on stdin."""
    processes = []
    for number in range(count):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "service.auditlog.verify_worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        processes.append(process)
        assert process.stdin is not None
        process.stdin.write(pickle.dumps(jobs[number::count]))
        await process.stdin.drain()
        process.stdin.close()
    return processes


async def _next_result(process: asyncio.subprocess.Process) -> ChunkResult:
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        length = int.from_bytes(await process.stdout.readexactly(8), "big")
        result = pickle.loads(await process.stdout.readexactly(length))  # noqa: S301 - our own child process
    except asyncio.IncompleteReadError:
        error = (await process.stderr.read()).decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"an audit verify worker failed: {error[-1] if error else 'no message'}") from None
    if not isinstance(result, ChunkResult):
        raise RuntimeError("an audit verify worker sent something else than a chunk's result")
    return result


def serve_jobs() -> None:
    """The worker's side (service/auditlog/verify_worker.py): jobs from stdin, each result to stdout as it is done
    (8-byte length, then the pickled `ChunkResult`)."""
    jobs = pickle.load(sys.stdin.buffer)  # noqa: S301 - from the parent that started this process
    out = sys.stdout.buffer

    async def run() -> None:
        for job in jobs:
            try:
                result = await _hash_chunk(job)
            except FastPathDeclined as declined:
                result = ChunkResult(job.start, declined=str(declined))
            data = pickle.dumps(result)
            out.write(len(data).to_bytes(8, "big") + data)
            out.flush()

    asyncio.run(run())
