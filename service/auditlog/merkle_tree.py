"""The writer's append-only RFC 9162 Merkle tree, kept in bounded memory: perfect subtree hashes from a floor up.

`MerkleTree(floor=k)` stores, for every level at or above k, the roots of the complete aligned blocks of 2^level
leaves (32 bytes each, one bytearray per level), plus the leaf hashes of the block of 2^k leaves still filling.
The leaf hashes of completed blocks are not kept: a question that needs them (a root at an earlier size, a proof
reaching inside an old block) raises `BlockNeeded`, and the caller supplies that block's leaf hashes with
`provide` (read from the store) and asks again; `provide` checks them against the block's stored root first, so
a block altered since it was read is refused. Memory is about 64 / 2^k bytes per leaf, plus a small cache of
supplied blocks; with k = 0 (the default) every leaf hash is kept and nothing is ever needed.

A root, inclusion or consistency proof costs O(log n) lookups plus at most a few blocks of 2^k hashes.
"""

from __future__ import annotations

from collections import OrderedDict

from service.auditlog import merkle


class BlockNeeded(LookupError):  # noqa: N818 - a request for data, not a failure
    """The leaf hashes of completed block `block` (leaves block * 2^floor onward) are needed to answer."""

    def __init__(self, block: int) -> None:
        super().__init__(f"the leaf hashes of block {block} are needed")
        self.block = block


class BlockMismatchError(ValueError):
    """Leaf hashes supplied for a block do not hash to the root the tree computed when it read that block."""


class MerkleTree:
    """An append-only RFC 9162 tree of leaf hashes with cached perfect subtrees from level `floor` up."""

    CACHED_BLOCKS = 64

    def __init__(self, floor: int = 0) -> None:
        if not 0 <= floor <= 20:
            raise ValueError("the floor is a level from 0 to 20")
        self.floor = floor
        self._levels: list[bytearray] = [bytearray() for _ in range(floor + 1)]
        self._filling = bytearray()  # leaf hashes of the block not yet complete (unused when floor is 0)
        self._supplied: OrderedDict[int, bytes] = OrderedDict()
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    @property
    def block_size(self) -> int:
        return 1 << self.floor

    def memory_bytes(self) -> int:
        """Bytes of hashes held: every kept level, the filling block and the cache of supplied blocks."""
        held = sum(len(row) for row in self._levels) + len(self._filling)
        return held + sum(len(block) for block in self._supplied.values())

    def append(self, leaf_hash: bytes) -> None:
        """Add the next leaf hash (32 bytes)."""
        if len(leaf_hash) != merkle.HASH_SIZE:
            raise ValueError("a leaf hash is 32 bytes")
        self._size += 1
        if self.floor == 0:
            self._push(0, leaf_hash)
            return
        self._filling += leaf_hash
        if len(self._filling) == merkle.HASH_SIZE << self.floor:
            block_root = _perfect_root(self._filling)
            self._filling = bytearray()
            self._push(self.floor, block_root)

    def provide(self, block: int, leaf_hashes: bytes) -> None:
        """Supply the leaf hashes of completed `block` (2^floor of them, concatenated), as `BlockNeeded` asked.

        Raises BlockMismatchError unless they hash to the block's root as read when the block was appended,
        ValueError if the block is not complete.
        """
        if not 0 <= block < self._size >> self.floor or self.floor == 0:
            raise ValueError(f"block {block} is not a completed block of this tree")
        if len(leaf_hashes) != merkle.HASH_SIZE << self.floor:
            raise BlockMismatchError(f"block {block} needs {self.block_size} leaf hashes")
        if _perfect_root(leaf_hashes) != self._level_hash(self.floor, block):
            raise BlockMismatchError(f"the leaf hashes given for block {block} do not match its root")
        self._supplied[block] = bytes(leaf_hashes)
        self._supplied.move_to_end(block)
        while len(self._supplied) > self.CACHED_BLOCKS:
            self._supplied.popitem(last=False)

    def leaf_hash(self, index: int) -> bytes:
        self._check_size(index + 1)
        return self._perfect(index, index + 1)

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first `size` leaves (default: all); EMPTY_ROOT for size 0."""
        size = self._size if size is None else size
        self._check_size(size)
        return merkle.EMPTY_ROOT if size == 0 else merkle.range_root(self._perfect, 0, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self._check_size(size)
        return merkle.inclusion_proof(self._subtree, index, size)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        self._check_size(second)
        return merkle.consistency_proof(self._subtree, first, second)

    def _push(self, level: int, digest: bytes) -> None:
        levels = self._levels
        levels[level] += digest
        while len(levels[level]) // merkle.HASH_SIZE % 2 == 0:  # a pair just completed: its parent joins above
            row = levels[level]
            parent = merkle.hash_children(row[-64:-32], row[-32:])
            level += 1
            if level == len(levels):
                levels.append(bytearray())
            levels[level] += parent

    def _subtree(self, start: int, end: int) -> bytes:
        return merkle.range_root(self._perfect, start, end)

    def _perfect(self, start: int, end: int) -> bytes:
        level = (end - start).bit_length() - 1
        if level >= self.floor:
            return self._level_hash(level, start >> level)
        block, size = start >> self.floor, merkle.HASH_SIZE
        if block == self._size >> self.floor:
            hashes: bytes | bytearray = self._filling
        elif block in self._supplied:
            hashes = self._supplied[block]
            self._supplied.move_to_end(block)
        else:
            raise BlockNeeded(block)
        offset = start - (block << self.floor)
        return _perfect_root(hashes[size * offset : size * (offset + (end - start))])

    def _level_hash(self, level: int, position: int) -> bytes:
        return bytes(self._levels[level][32 * position : 32 * position + 32])

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self._size:
            raise ValueError(f"size {size} is beyond the tree's {self._size} leaves")


def _perfect_root(hashes: bytes | bytearray) -> bytes:
    """The root of a perfect subtree given its leaf hashes concatenated (a power of two of them)."""
    row = bytes(hashes)
    while len(row) > merkle.HASH_SIZE:
        row = b"".join(merkle.hash_children(row[i : i + 32], row[i + 32 : i + 64]) for i in range(0, len(row), 64))
    return row
