"""The offline verifier's own RFC 9162 arithmetic: leaf and node hashes, a streaming root, proof checks.

Written apart from `merkle.py` on purpose (the verifier shares no code with the writer): proofs are checked
with the bit-walking algorithms of RFC 9162 sections 2.1.3.2 and 2.1.4.2, not by recomputing the writer's
recursion, so one mistake cannot hide in both. Every function is pure and answers True/False or bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from hashlib import sha256

HASH_SIZE = 32


def leaf_hash(leaf: bytes) -> bytes:
    return sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right).digest()


class StreamingRoot:
    """The root of a growing log in O(log n) memory: one perfect-subtree hash per 1-bit of the size."""

    def __init__(self) -> None:
        self.size = 0
        self._peaks: list[bytes] = []

    def add(self, digest: bytes) -> None:
        self.extend((digest,))

    def extend(self, digests: Iterable[bytes]) -> None:
        peaks, size, node = self._peaks, self.size, sha256
        pop, push = peaks.pop, peaks.append
        for digest in digests:
            carry, pending = size, digest
            while carry & 1:
                pending = node(b"\x01" + pop() + pending).digest()
                carry >>= 1
            push(pending)
            size += 1
        self.size = size

    @property
    def peaks(self) -> tuple[bytes, ...]:
        """The perfect subtree hashes now held, largest (leftmost) first: one per 1-bit of the size."""
        return tuple(self._peaks)

    def add_subtree(self, digest: bytes, level: int) -> None:
        """Add the root of a perfect subtree of 2^level leaves; the size must be a multiple of 2^level."""
        if self.size % (1 << level):
            raise ValueError(f"a subtree of 2^{level} leaves cannot follow {self.size} leaves")
        carry, pending = self.size >> level, digest
        while carry & 1:
            pending = node_hash(self._peaks.pop(), pending)
            carry >>= 1
        self._peaks.append(pending)
        self.size += 1 << level

    def root(self, more: Sequence[bytes] = ()) -> bytes:
        """MTH of the leaves so far, or, given `more` (the peaks of leaves that would follow, each smaller than
        every peak held), of those leaves and these together."""
        return peaks_root([*self._peaks, *more])


def peaks_root(peaks: Sequence[bytes]) -> bytes:
    """MTH of a log whose perfect subtree hashes, largest first, are `peaks` (SHA-256("") for none)."""
    if not peaks:
        return sha256(b"").digest()
    result = peaks[-1]
    for peak in reversed(peaks[:-1]):
        result = node_hash(peak, result)
    return result


def verify_inclusion(leaf_digest: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """True iff `proof` shows the leaf hash `leaf_digest` at `index` in the tree of `size` with `root`."""
    if not 0 <= index < size or len(leaf_digest) != HASH_SIZE or any(len(p) != HASH_SIZE for p in proof):
        return False
    fn, sn, r = index, size - 1, leaf_digest
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]) -> bool:
    """True iff `proof` shows the tree of size `first` with `first_root` is a prefix of `second` with
    `second_root`. Equal sizes need an empty proof and equal roots; a proof from size 0 is refused."""
    if first <= 0 or second < first:
        return False
    if first == second:
        return not proof and first_root == second_root
    if not proof or any(len(p) != HASH_SIZE for p in proof):
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == first_root and sr == second_root
