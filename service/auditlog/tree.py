"""The audit log's Merkle tree in memory, mirrored from the database and checked as it is read.

`MerkleTree` keeps every perfect aligned subtree hash (level k holds the roots of the complete blocks of 2^k
leaves, 32 bytes each in one bytearray), so a root, an inclusion proof or a consistency proof for any size up
to the current one costs O(log n) lookups and hashes. Memory is about 64 bytes per leaf.

`AuditTree` fills one from `audit_events`: every leaf's hash is recomputed from its bytes and compared with
the stored `leaf_hash`, and the indexes must be dense, before the leaf joins the tree. It is rebuilt this way
on start (`AuditTree.load`) and then follows the table (`sync`); several service processes each keep their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import asyncpg

from service.auditlog import merkle
from service.auditlog.merkle_tree import BlockMismatchError, BlockNeeded, MerkleTree
from service.errors import Code, HandoverError
from service.store import audit_reads, db
from service.store import checkpoints as checkpoint_store

T = TypeVar("T")


class AuditIntegrityError(RuntimeError):
    """The stored log contradicts itself or what was already read: a leaf's hash, a gap, a checkpoint root."""


@dataclass(frozen=True)
class SyncResult:
    size: int
    added: int


class AuditTree:
    """The service's mirror of `audit_events`: a `MerkleTree` that only ever grows by checked leaves.

    Coroutines share one instance; `sync` is serialised by a lock so leaves are added once and in order.
    """

    BATCH = 5000
    FLOOR_LEVEL = 8
    """Blocks of 2^8 = 256 leaves: about 0.25 bytes held per entry, 8 KB read back per block a proof needs."""

    def __init__(self) -> None:
        self.tree = MerkleTree(floor=self.FLOOR_LEVEL)
        self._lock = asyncio.Lock()

    @property
    def size(self) -> int:
        return self.tree.size

    @classmethod
    async def load(cls, conn: asyncpg.Connection) -> AuditTree:
        """Rebuild from the table and check it against every stored checkpoint's root.

        Raises AuditIntegrityError when a leaf's stored hash is not SHA-256(0x00 || leaf), an index is
        missing, or a stored checkpoint's root differs from the recomputed one (or is beyond the log).
        """
        audit_tree = cls()
        # Checkpoints first: each was signed over entries already committed, so the log read next covers them
        # all, even while other hub processes append and sign meanwhile (read the other way round, a checkpoint
        # signed between the two reads would look "beyond the log" and stop this process from starting).
        checkpoints = await checkpoint_store.all_checkpoints(conn)
        await audit_tree.sync(conn)
        for checkpoint in checkpoints:
            await audit_tree.check_root(conn, checkpoint.tree_size, checkpoint.root_hash)
        return audit_tree

    async def sync(self, conn: asyncpg.Connection, up_to: int | None = None) -> SyncResult:
        """Read and check the leaves committed since the last sync (only up to `up_to` if given)."""
        async with self._lock:
            start = self.tree.size
            target = await audit_reads.log_size(conn) if up_to is None else up_to
            while self.tree.size < target:
                end = min(target, self.tree.size + self.BATCH)
                rows = await audit_reads.read_leaves(conn, self.tree.size, end)
                if not rows:
                    raise AuditIntegrityError(f"audit_events has no entry {self.tree.size} below size {target}")
                for row in rows:
                    self._add(row)
            return SyncResult(self.tree.size, self.tree.size - start)

    async def answer(self, conn: asyncpg.Connection, question: Callable[[], T]) -> T:
        """`question()`, a computation on `self.tree`, after reading back any completed blocks it needs.

        Raises AuditIntegrityError when a block read back is short or no longer hashes to its root.
        """
        while True:
            try:
                return question()
            except BlockNeeded as need:
                await self._read_block(conn, need.block)

    async def root(self, conn: asyncpg.Connection, size: int) -> bytes:
        """MTH of the first `size` leaves (size within what the tree has read)."""
        return await self.answer(conn, lambda: self.tree.root(size))

    async def check_root(self, conn: asyncpg.Connection, size: int, root: bytes) -> None:
        """Raise AuditIntegrityError unless the tree has `size` leaves whose root is `root`."""
        if size > self.tree.size:
            raise AuditIntegrityError(f"a checkpoint of size {size} is beyond the log's {self.tree.size} entries")
        found = await self.root(conn, size)
        if found != root:
            raise AuditIntegrityError(
                f"the checkpoint of size {size} has root {root.hex()}, the log gives {found.hex()}"
            )

    async def _read_block(self, conn: asyncpg.Connection, block: int) -> None:
        start, end = block * self.tree.block_size, (block + 1) * self.tree.block_size
        hashes = await audit_reads.read_leaf_hashes(conn, start, end)
        try:
            self.tree.provide(block, b"".join(hashes))
        except BlockMismatchError as err:
            raise AuditIntegrityError(
                f"audit_events entries {start}..{end - 1} changed after they were read: {err}"
            ) from err

    def _add(self, row: audit_reads.StoredLeaf) -> None:
        expected = self.tree.size
        if row.index != expected:
            raise AuditIntegrityError(f"audit_events index {expected} is missing (next found: {row.index})")
        computed = merkle.hash_leaf(row.leaf)
        if computed != row.leaf_hash:
            raise AuditIntegrityError(
                f"entry {expected}: stored leaf_hash {row.leaf_hash.hex()} but the leaf hashes to {computed.hex()}"
            )
        self.tree.append(computed)


class AuditLogReader:
    """What the audit endpoints ask of the log, answered from the process's `AuditTree` and the store.

    Sizes beyond what the tree has read make it catch up first; beyond the stored log they are refused
    with HandoverError NOT_FOUND. Arguments: the pool and the tree.
    """

    MAX_ENTRIES = 1000

    def __init__(self, pool: asyncpg.Pool, tree: AuditTree) -> None:
        self._pool = pool
        self.tree = tree

    async def latest_checkpoint(self) -> checkpoint_store.StoredCheckpoint | None:
        async with db.connection(self._pool) as conn:
            return await checkpoint_store.latest_checkpoint(conn)

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """PATH(index, D[0:size]); HandoverError BAD_HEADER unless 0 <= index < size."""
        if not 0 <= index < size:
            raise HandoverError(Code.BAD_HEADER, "index must be less than size")
        await self._reach(size)
        return await self._answer(lambda: self.tree.tree.inclusion_proof(index, size))

    async def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """PROOF(first, D[0:second]); HandoverError BAD_HEADER unless 0 < first <= second."""
        if not 0 < first <= second:
            raise HandoverError(Code.BAD_HEADER, "first must be at least 1 and at most second")
        await self._reach(second)
        return await self._answer(lambda: self.tree.tree.consistency_proof(first, second))

    async def entries(self, start: int, end: int | None) -> list[audit_reads.StoredLeaf]:
        """Entries start..end inclusive (RFC 9162 get-entries), clamped to the log and to MAX_ENTRIES."""
        last = start + self.MAX_ENTRIES - 1 if end is None else min(end, start + self.MAX_ENTRIES - 1)
        if last < start:
            raise HandoverError(Code.BAD_HEADER, "end must not be less than start")
        async with db.connection(self._pool) as conn:
            size = await audit_reads.log_size(conn)
            if start >= size:
                raise HandoverError(Code.NOT_FOUND, f"the audit log has {size} entries")
            return await audit_reads.read_leaves(conn, start, min(last + 1, size))

    async def _answer(self, question: Callable[[], T]) -> T:
        """`question()` on the tree; a connection is taken only when it needs a block read back."""
        try:
            return question()
        except BlockNeeded:
            async with db.connection(self._pool) as conn:
                return await self.tree.answer(conn, question)

    async def _reach(self, size: int) -> None:
        if size <= self.tree.size:
            return
        async with db.connection(self._pool) as conn:
            await self.tree.sync(conn)
        if size > self.tree.size:
            raise HandoverError(Code.NOT_FOUND, f"the audit log has {self.tree.size} entries")
