"""`handover audit verify`'s fast path: the log read and hashed in aligned chunks by several processes at once.

The parent exports its REPEATABLE READ snapshot (`pg_export_snapshot`, as `pg_dump -j` does); each worker process
imports it, so every chunk comes from the same state of the log as the checkpoints the parent read. A worker
reads its chunk of 2^CHUNK_LEVEL entries as a few aggregated values (each stored leaf hash, 0x00 and the leaf,
in index order, joined by a separator that cannot occur in a leaf), so no Python object is built per row but the
slices it hashes; it recomputes every leaf hash, compares them with the stored ones in bulk, and folds them with
the verifier's own `StreamingRoot`. It sends back only small things: the chunk's peaks (one hash for a whole chunk),
the peaks at every checkpoint size that falls inside it, and the leaves that receipts name.
`verify_cli.LogCheck.consume_chunk` joins them in order; because chunks are aligned, a whole chunk is one perfect
subtree of the log.

The fast path proves a log whole, or gives way: it applies to a dense log only (count = max index + 1), and
declines (`FastPathDeclined`) when a slice does not split into its rows or a leaf hash differs. `verify_cli` then
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
from hashlib import sha256
from typing import Protocol

import asyncpg

from service.auditlog.verifier import StreamingRoot

CHUNK_LEVEL = 16
"""Chunks of 65,536 entries: large enough that a worker's start-up and connection are noise."""
_SNAPSHOT = re.compile(r"[0-9A-F]{1,16}(-[0-9A-F]{1,16}){1,3}")
SLICE_ROWS = 8192
"""Entries per query: one aggregated value of about 3.5 MB, sorted in memory (the worker raises work_mem)."""
SEPARATOR = bytes.fromhex("fffefdfc" * 4)
"""Between rows: never in a leaf (bytes 0xF8-0xFF are not UTF-8, and a leaf is UTF-8 JSON) and, at 16 bytes, in a
leaf hash only by design: then a slice splits into the wrong number of rows and the fast path declines."""
_SLICE = (
    "SELECT string_agg(leaf_hash || '\\x00'::bytea || leaf, '\\xfffefdfcfffefdfcfffefdfcfffefdfc'::bytea"
    " ORDER BY seq), count(*) FROM audit_events WHERE seq >= $1 AND seq < $2"
)


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
    """The fast path cannot prove this log whole (a slice does not split into its rows, or a leaf hash differs):
    read it sequentially, which reports each divergence at its index."""


class _ChunkHasher:
    """Checks and folds the rows of one chunk, a slice at a time, in index order."""

    def __init__(self, job: ChunkJob) -> None:
        self.job = job
        self.result = ChunkResult(job.start)
        self._root = StreamingRoot()
        self._sizes = sorted(job.sizes)
        self._claimed = set(job.claimed)

    def take(self, rows: int, blob: bytes | None) -> None:
        """`rows` entries as `_SLICE` aggregates them: each leaf hash, 0x00 and the leaf, joined by SEPARATOR."""
        parts = blob.split(SEPARATOR) if blob is not None else []
        if len(parts) != rows or min(map(len, parts), default=33) < 33:
            raise FastPathDeclined(f"entries from {self.job.start + self.result.rows} do not split into {rows} rows")
        stored = [part[:32] for part in parts]
        digests = [sha256(part[32:]).digest() for part in parts]
        result, first = self.result, self.job.start + self.result.rows
        if stored != digests:  # tampering: the sequential reader reports every divergence, each at its index
            raise FastPathDeclined(f"a leaf hash differs in entries {first}..{first + rows - 1}")
        done = 0
        while self._sizes and self._sizes[0] <= first + len(digests):  # peaks at each size the parent checks
            size = self._sizes.pop(0)
            self._root.extend(digests[done : size - first])
            done = size - first
            result.at_sizes[size] = self._root.peaks
        self._root.extend(digests[done:])
        for index in self._claimed:
            if first <= index < first + rows:
                result.leaves[index] = (parts[index - first][33:], digests[index - first])
        result.rows += rows

    def finish(self) -> ChunkResult:
        self.result.peaks = self._root.peaks
        return self.result


async def _hash_chunk(job: ChunkJob) -> ChunkResult:
    if not _SNAPSHOT.fullmatch(job.snapshot):
        raise ValueError("not a PostgreSQL snapshot id")
    hasher = _ChunkHasher(job)
    conn = await asyncpg.connect(job.dsn)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            await conn.execute(f"SET TRANSACTION SNAPSHOT '{job.snapshot}'")
            await conn.execute("SET LOCAL work_mem = '64MB'")  # each slice sorts in memory, never on disk
            statement = await conn.prepare(_SLICE)
            slices = [(start, min(job.end, start + SLICE_ROWS)) for start in range(job.start, job.end, SLICE_ROWS)]
            pending = asyncio.ensure_future(statement.fetchrow(*slices[0]))
            try:
                for number, (start, end) in enumerate(slices):
                    blob, rows = await pending
                    if number + 1 < len(slices):  # the server builds the next slice while this one is hashed
                        pending = asyncio.ensure_future(statement.fetchrow(*slices[number + 1]))
                    if rows != end - start:  # the snapshot is the parent's: a dense log cannot lose rows here
                        raise RuntimeError(f"entries {start}..{end - 1}: {rows} rows")
                    await asyncio.to_thread(hasher.take, rows, blob)
            finally:
                pending.cancel()
    finally:
        await conn.close()
    return hasher.finish()


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
    """What `read_in_parallel` feeds: `verify_cli.LogCheck`."""

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
    fast path does not apply: a log that is not dense, or one too small to be worth more than one chunk."""
    first, count, top = await conn.fetchrow("SELECT min(seq), count(*), max(seq) FROM audit_events")
    if count < 2 << level or first != 0 or top != count - 1:
        return False
    snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
    jobs = chunk_jobs(dsn, snapshot, count, list(check.target_sizes), list(check.claimed_indexes), level=level)
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
