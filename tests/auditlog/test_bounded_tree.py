"""The writer's tree in bounded memory (issue 16): from a floor level up it keeps subtree hashes only, answers
every root and proof exactly as the full tree does once the blocks it asks for are supplied, refuses a supplied
block that changed, and the service's `AuditTree` reads those blocks back from `audit_events` itself."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TypeVar

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.auditlog import merkle, verifier
from service.auditlog.merkle_tree import BlockMismatchError, BlockNeeded, MerkleTree
from service.auditlog.tree import AuditIntegrityError, AuditLogReader, AuditTree
from tests.auditlog.audit_fixtures import append_events, pool_for, superuser

T = TypeVar("T")


def _hashes(count: int, seed: bytes) -> list[bytes]:
    return [merkle.hash_leaf(hashlib.sha256(seed + i.to_bytes(4, "big")).digest()) for i in range(count)]


def _asking(tree: MerkleTree, hashes: list[bytes], question: Callable[[], T]) -> tuple[T, set[int]]:
    """`question()`, supplying each block the tree asks for from the full list; also which blocks it asked for."""
    asked: set[int] = set()
    while True:
        try:
            return question(), asked
        except BlockNeeded as need:
            block = need.block
        if block in asked:
            raise AssertionError(f"block {block} was asked for again after it was supplied")
        asked.add(block)
        size = tree.block_size
        tree.provide(block, b"".join(hashes[block * size : (block + 1) * size]))


@settings(max_examples=30, deadline=None)
@given(
    floor=st.integers(min_value=1, max_value=4),
    count=st.integers(min_value=1, max_value=200),
    seed=st.binary(max_size=8),
    data=st.data(),
)
def test_t6_a_floored_tree_answers_as_the_full_tree(floor: int, count: int, seed: bytes, data: st.DataObject) -> None:
    hashes = _hashes(count, seed)
    full, floored = MerkleTree(), MerkleTree(floor=floor)
    for digest in hashes:
        full.append(digest)
        floored.append(digest)
    for size in data.draw(st.lists(st.integers(min_value=0, max_value=count), min_size=1, max_size=6)):
        root, asked = _asking(floored, hashes, lambda s=size: floored.root(s))
        assert root == full.root(size)
        assert len(asked) <= 1  # only the block the size ends in
        if size == 0:
            continue
        index = data.draw(st.integers(min_value=0, max_value=size - 1))
        proof, asked = _asking(floored, hashes, lambda i=index, s=size: floored.inclusion_proof(i, s))
        assert proof == full.inclusion_proof(index, size) and len(asked) <= 2
        assert verifier.verify_inclusion(hashes[index], index, size, proof, full.root(size))
        first = data.draw(st.integers(min_value=1, max_value=size))
        proof, asked = _asking(floored, hashes, lambda f=first, s=size: floored.consistency_proof(f, s))
        assert proof == full.consistency_proof(first, size) and len(asked) <= 2
        leaf, _ = _asking(floored, hashes, lambda i=index: floored.leaf_hash(i))
        assert leaf == hashes[index]


def test_t6_memory_grows_by_a_fraction_of_a_hash_per_leaf() -> None:
    full, floored = MerkleTree(), MerkleTree(floor=8)
    for digest in _hashes(20_000, b"memory"):
        full.append(digest)
        floored.append(digest)
    assert full.memory_bytes() >= 20_000 * 32 * 2 - 64 * 32
    assert floored.memory_bytes() <= 20_000 * 32 * 2 // 256 + 256 * 32  # kept levels, plus one filling block
    assert floored.root() == full.root()


def test_t6_a_supplied_block_that_changed_is_refused() -> None:
    hashes = _hashes(40, b"changed")
    tree = MerkleTree(floor=2)
    for digest in hashes:
        tree.append(digest)
    with pytest.raises(BlockNeeded) as need:
        tree.inclusion_proof(5, 40)
    altered = [*hashes[4:8]]
    altered[1] = merkle.hash_leaf(b"not the leaf")
    with pytest.raises(BlockMismatchError):
        tree.provide(need.value.block, b"".join(altered))
    with pytest.raises(BlockMismatchError):
        tree.provide(need.value.block, b"".join(hashes[4:7]))
    with pytest.raises(ValueError, match="not a completed block"):
        tree.provide(10, b"".join(hashes[40:44]))  # not a completed block


async def test_t6_the_audit_tree_reads_old_blocks_back_for_proofs(database: str) -> None:
    count = 3 * AuditTree().tree.block_size + 37
    appended = await append_events(database, count)
    full = MerkleTree()
    for leaf in appended:
        full.append(leaf.leaf_hash)
    async with pool_for(database) as pool:
        conn: asyncpg.Connection
        async with pool.acquire() as conn:
            tree = await AuditTree.load(conn)
            untouched = await AuditTree.load(conn)  # read now; asked nothing until the log is changed below
            assert tree.tree.memory_bytes() < count * 8
            for size in (1, 255, 256, 300, 700, count):
                assert await tree.root(conn, size) == full.root(size)
        reader = AuditLogReader(pool, tree)
        for index, size in ((0, count), (10, 300), (500, 700), (count - 1, count)):
            assert await reader.inclusion_proof(index, size) == full.inclusion_proof(index, size)
        assert await reader.consistency_proof(100, 600) == full.consistency_proof(100, 600)

        async with superuser(database) as admin:  # a stored leaf hash in a block already read is changed
            await admin.execute("UPDATE audit_events SET leaf_hash = $1 WHERE seq = 3", b"\x00" * 32)
        with pytest.raises(AuditIntegrityError, match="changed after they were read"):
            await AuditLogReader(pool, untouched).inclusion_proof(3, count)
        with pytest.raises(AuditIntegrityError):  # a tree reading the log afresh checks every leaf's hash
            await AuditLogReader(pool, AuditTree()).inclusion_proof(3, count)
