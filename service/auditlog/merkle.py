"""RFC 9162 Merkle tree arithmetic for the writer: node hashes, subtree roots, inclusion and consistency proofs.

Pure functions over a `SubtreeRoot` callback giving MTH(D[start:end]) for the nodes of the tree, so a caller
can answer from a cache (`tree.MerkleTree`) or by hashing leaves. The proofs follow the recursive definitions
PATH and SUBPROOF of RFC 9162 sections 2.1.3.1 and 2.1.4.1. Checking proofs is `verifier.py`'s job, written
separately so the writer and the verifier share no code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}) = SHA-256 of the empty string: the root of a log with no entries."""

SubtreeRoot = Callable[[int, int], bytes]
"""MTH(D[start:end]) for a node of the tree: `end - start` >= 1, and `start` aligned as RFC 9162 splits."""

PerfectRoot = Callable[[int, int], bytes]
"""MTH(D[start:end]) for a perfect, aligned subtree: `end - start` a power of two dividing `start`."""


def hash_leaf(leaf: bytes) -> bytes:
    """SHA-256(0x00 || leaf)."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def hash_children(left: bytes | bytearray, right: bytes | bytearray) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(count: int) -> int:
    """The largest power of two strictly below `count` (which must be at least 2): RFC 9162's k."""
    if count < 2:
        raise ValueError("a split needs at least two leaves")
    return 1 << ((count - 1).bit_length() - 1)


def root_from_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a whole list of leaf hashes (EMPTY_ROOT for none), by the recursive definition."""
    if not leaf_hashes:
        return EMPTY_ROOT
    return _naive(leaf_hashes, 0, len(leaf_hashes))


def range_root(perfect: PerfectRoot, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for a node of the tree, asking `perfect` only for perfect aligned subtrees: the
    left part of every RFC 9162 split is one, so at most about log2(end - start) calls are made."""
    if end <= start:
        raise ValueError("a range root needs at least one leaf")
    lefts: list[bytes] = []
    while not _is_perfect(start, end):
        k = split_point(end - start)
        lefts.append(perfect(start, start + k))
        start += k
    result = perfect(start, end)
    for left in reversed(lefts):
        result = hash_children(left, result)
    return result


def _is_perfect(start: int, end: int) -> bool:
    count = end - start
    return count & (count - 1) == 0 and start % count == 0


def inclusion_proof(subtree: SubtreeRoot, index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size]): sibling hashes from the leaf up. Raises ValueError unless 0 <= index < size."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} is not in a tree of size {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index < start + k:
            path.append(subtree(start + k, end))
            end = start + k
        else:
            path.append(subtree(start, start + k))
            start += k
    path.reverse()
    return path


def consistency_proof(subtree: SubtreeRoot, first: int, second: int) -> list[bytes]:
    """PROOF(first, D[0:second]); empty when the sizes are equal. Raises ValueError unless 0 < first <= second."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from size {first} to size {second}")
    proof: list[bytes] = []
    start, end, m, complete = 0, second, first, True
    while m != end - start:
        k = split_point(end - start)
        if m <= k:
            proof.append(subtree(start + k, end))
            end = start + k
        else:
            proof.append(subtree(start, start + k))
            start, m, complete = start + k, m - k, False
    if not complete:
        proof.append(subtree(start, end))
    proof.reverse()
    return proof


def _naive(leaf_hashes: Sequence[bytes], start: int, end: int) -> bytes:
    if end - start == 1:
        return leaf_hashes[start]
    k = split_point(end - start)
    return hash_children(_naive(leaf_hashes, start, start + k), _naive(leaf_hashes, start + k, end))
