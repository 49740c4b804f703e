"""Bulk RFC 9162 hashing for `handover audit verify`'s fast path: the leaves of a binary COPY of
(leaf_hash, leaf), and a Merkle tree's levels built from its leaf hashes, with the peaks at any size read off them.

`copy_rows` and `parents` come from the compiled helper `_treehash` (setup.py builds it over OpenSSL's libcrypto
where a C compiler and the headers exist: one call hashes thousands of leaves, without the GIL) or else from the
pure-Python twins below, which the tests hold it to byte for byte. `COMPILED` says which; HANDOVER_TREEHASH=python
in the environment chooses the twins.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from hashlib import sha256

from service.auditlog.verifier import leaf_hash

DIGEST_SIZE = 32
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
COPY_TRAILER = b"\xff\xff"
_ROW_HEAD = struct.Struct(">hi32si")
"""int16 field count (2), int32 length (32), the stored leaf hash, int32 length of the leaf."""


def copy_rows_py(data: bytes, offset: int) -> tuple[int, bytes, bytes]:
    """The complete (leaf_hash, leaf) rows of a binary COPY body from `offset`: (offset after the last one, the
    stored leaf hashes joined, SHA-256(0x00 || leaf) of each leaf joined). Stops at the trailer or at a row the
    data ends inside; ValueError for anything that is not such a row."""
    if not 0 <= offset <= len(data):
        raise ValueError("offset outside the data")
    stored, digests, end, size = [], [], offset, len(data)
    while size - end >= 2 and data[end : end + 2] != COPY_TRAILER:
        if data[end : end + 2] != b"\x00\x02" or (size - end >= 6 and data[end + 2 : end + 6] != b"\x00\x00\x00\x20"):
            raise ValueError(f"not a (leaf_hash, leaf) row at byte {end}")
        if size - end < _ROW_HEAD.size:
            break
        _, _, stored_hash, leaf_size = _ROW_HEAD.unpack_from(data, end)
        if leaf_size < 0:
            raise ValueError(f"not a (leaf_hash, leaf) row at byte {end}")
        start = end + _ROW_HEAD.size
        if leaf_size > size - start:
            break
        stored.append(stored_hash)
        digests.append(leaf_hash(data[start : start + leaf_size]))
        end = start + leaf_size
    return end, b"".join(stored), b"".join(digests)


def parents_py(level: bytes) -> bytes:
    """The level above `level` (32-byte hashes): SHA-256(0x01 || left || right) of each pair; an odd last is left."""
    if len(level) % DIGEST_SIZE:
        raise ValueError("a level is a whole number of 32-byte hashes")
    return b"".join(sha256(b"\x01" + level[i : i + 64]).digest() for i in range(0, len(level) - 63, 64))


copy_rows: Callable[[bytes, int], tuple[int, bytes, bytes]]
parents: Callable[[bytes], bytes]
try:
    if os.environ.get("HANDOVER_TREEHASH") == "python":  # to measure or test the twins where the helper is built
        raise ImportError("HANDOVER_TREEHASH=python")
    from service.auditlog._treehash import copy_rows, parents  # type: ignore[import-not-found,no-redef]

    COMPILED = True
except ImportError:  # built without a compiler or OpenSSL's headers: the same results, slower
    copy_rows, parents, COMPILED = copy_rows_py, parents_py, False


def copy_header_length(data: bytes) -> int:
    """The length of a binary COPY's header (signature, flags, extension area), 0 while `data` is too short to tell;
    ValueError if it is not one."""
    if len(data) < len(COPY_SIGNATURE) + 8:
        return 0
    if not data.startswith(COPY_SIGNATURE):
        raise ValueError("not a binary COPY")
    extension = int.from_bytes(data[len(COPY_SIGNATURE) + 4 : len(COPY_SIGNATURE) + 8], "big")
    length = len(COPY_SIGNATURE) + 8 + extension
    return length if len(data) >= length else 0


class Levels:
    """Every level of the Merkle tree over the leaf hashes of one aligned chunk of the log (it starts at a multiple
    of 2^k and holds at most 2^k leaves), so that each node here is a node of the log's own tree. An odd last hash of
    a level has no parent here."""

    def __init__(self, leaf_hashes: bytes) -> None:
        self.levels = [leaf_hashes]
        while len(self.levels[-1]) >= 2 * DIGEST_SIZE:
            self.levels.append(parents(self.levels[-1]))

    @property
    def size(self) -> int:
        return len(self.levels[0]) // DIGEST_SIZE

    def peaks(self, size: int) -> tuple[bytes, ...]:
        """The perfect subtree hashes of the first `size` leaves, largest first: one per 1-bit of `size`."""
        if not 0 <= size <= self.size:
            raise ValueError(f"no {size} leaves in {self.size}")
        result, offset = [], 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                at = (offset >> level) * DIGEST_SIZE
                result.append(self.levels[level][at : at + DIGEST_SIZE])
                offset += 1 << level
        return tuple(result)

    def leaf(self, index: int) -> bytes:
        return self.levels[0][index * DIGEST_SIZE : (index + 1) * DIGEST_SIZE]
