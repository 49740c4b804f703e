"""T5 for the fast path's bulk hashing (service/auditlog/treehash.py): the compiled helper and its pure-Python twin
give the same bytes on generated COPY streams, cut anywhere, and refuse the same malformed ones; both give the
transparency-dev/merkle vectors' roots for the RFC 6962 reference leaves; `Levels.peaks` agrees with the verifier's
own `StreamingRoot` at every size."""

from __future__ import annotations

import hashlib
import importlib
import itertools
import os
import shutil
import struct
import sysconfig
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.auditlog import treehash, verifier
from tests.auditlog.test_merkle_vectors import REFERENCE_LEAVES, _b, reference_inclusion_cases

try:  # the helper itself, whatever HANDOVER_TREEHASH chose for the fast path
    HELPER: ModuleType | None = importlib.import_module("service.auditlog._treehash")
except ImportError:  # not built on this machine: test_the_compiled_helper_is_built_... says whether it should be
    HELPER = None
CopyRows = Callable[[bytes, int], tuple[int, bytes, bytes]]
IMPLEMENTATIONS: list[tuple[CopyRows, Callable[[bytes], bytes]]] = [(treehash.copy_rows_py, treehash.parents_py)]
if HELPER is not None:
    IMPLEMENTATIONS.append((HELPER.copy_rows, HELPER.parents))
IDS = ["python", "compiled"][: len(IMPLEMENTATIONS)]
HEADER = treehash.COPY_SIGNATURE + bytes(8)


def copy_stream(leaves: list[bytes], stored: list[bytes] | None = None) -> bytes:
    """A binary COPY of (leaf_hash, leaf) rows as PostgreSQL writes it."""
    hashes = stored if stored is not None else [verifier.leaf_hash(leaf) for leaf in leaves]
    rows = b"".join(
        struct.pack(">hi", 2, 32) + digest + struct.pack(">i", len(leaf)) + leaf
        for digest, leaf in zip(hashes, leaves, strict=True)
    )
    return HEADER + rows + treehash.COPY_TRAILER


def test_the_compiled_helper_is_built_where_this_machine_can_build_it() -> None:
    """With a C compiler, Python's headers and OpenSSL's (as .ci/run makes sure of), the fast path must not fall
    back to the twins unnoticed: a helper that stopped compiling would only show as a slower verify."""
    headers = Path(sysconfig.get_paths()["include"], "Python.h"), Path("/usr/include/openssl/evp.h")
    if shutil.which("gcc") is None or not all(path.exists() for path in headers):
        pytest.skip("this machine cannot build the helper: no gcc, or no Python or OpenSSL headers")
    assert HELPER is not None, "the compiled helper was not built (see pip's output for setup.py)"
    twins_chosen = os.environ.get("HANDOVER_TREEHASH") == "python"
    assert treehash.COMPILED is not twins_chosen
    assert treehash.copy_rows is (treehash.copy_rows_py if twins_chosen else HELPER.copy_rows)


@pytest.mark.parametrize(("copy_rows", "parents"), IMPLEMENTATIONS, ids=IDS)
def test_t5_reference_leaves_give_the_vectors_roots(copy_rows: CopyRows, parents: Callable[[bytes], bytes]) -> None:
    data = copy_stream(REFERENCE_LEAVES)
    end, stored, digests = copy_rows(data, len(HEADER))
    assert data[end:] == treehash.COPY_TRAILER and stored == digests
    levels = treehash.Levels(digests)
    for name, case in reference_inclusion_cases(levels.leaf):
        assert verifier.peaks_root(levels.peaks(case["treeSize"])) == _b(case["root"]), name


leaf_lists = st.lists(st.binary(max_size=600), max_size=40)


@settings(max_examples=300, deadline=None)
@given(leaves=leaf_lists, cuts=st.lists(st.integers(min_value=0), max_size=6))
def test_t5_both_implementations_agree_on_a_stream_cut_anywhere(leaves: list[bytes], cuts: list[int]) -> None:
    """Fed in pieces as asyncpg hands them over (any cut, mid-row included), each implementation yields every
    row once, in order, with SHA-256(0x00 || leaf), and ends on the trailer."""
    data = copy_stream(leaves)
    expected = b"".join(verifier.leaf_hash(leaf) for leaf in leaves)
    bounds = sorted({len(HEADER), *(len(HEADER) + c % (len(data) - len(HEADER) + 1) for c in cuts), len(data)})
    for copy_rows, _ in IMPLEMENTATIONS:
        rest, stored, digests = b"", [], []
        for start, stop in itertools.pairwise(bounds):
            piece = rest + data[start:stop]
            end, got_stored, got = copy_rows(piece, 0)
            stored.append(got_stored)
            digests.append(got)
            rest = piece[end:]
        assert rest == treehash.COPY_TRAILER
        assert b"".join(digests) == expected == b"".join(stored)


@st.composite
def damaged_streams(draw: st.DrawFn) -> bytes:
    """A valid stream's rows with a few bytes overwritten, cut short, or not at all."""
    data = bytearray(copy_stream(draw(st.lists(st.binary(max_size=80), max_size=6)))[len(HEADER) :])
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        data[draw(st.integers(min_value=0, max_value=len(data) - 1))] = draw(st.integers(min_value=0, max_value=255))
    return bytes(data[: draw(st.integers(min_value=0, max_value=len(data)))])


@settings(max_examples=500, deadline=None)
@given(data=st.one_of(st.binary(max_size=300), damaged_streams()), offset=st.integers(min_value=0, max_value=40))
def test_t5_both_implementations_refuse_or_read_arbitrary_bytes_alike(data: bytes, offset: int) -> None:
    outcomes: list[object] = []
    for copy_rows, _ in IMPLEMENTATIONS:
        try:
            outcomes.append(copy_rows(data, offset))
        except ValueError as error:
            outcomes.append(type(error))
    assert all(outcome == outcomes[0] for outcome in outcomes)


@pytest.mark.parametrize(("copy_rows", "parents"), IMPLEMENTATIONS, ids=IDS)
@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (struct.pack(">hi", 3, 32) + bytes(32) + struct.pack(">i", 1) + b"x", "three fields"),
        (struct.pack(">hi", 2, 31) + bytes(31) + struct.pack(">i", 1) + b"x", "a hash of 31 bytes"),
        (struct.pack(">hi", 2, 32) + bytes(32) + struct.pack(">i", -1), "a NULL leaf"),
        (struct.pack(">hi", 2, 32) + bytes(32) + struct.pack(">i", -7), "a negative length"),
    ],
    ids=["fields", "hash-length", "null-leaf", "negative-length"],
)
def test_b_a_row_that_is_not_leaf_hash_and_leaf_is_refused(
    copy_rows: CopyRows, parents: Callable[[bytes], bytes], row: bytes, reason: str
) -> None:
    good = copy_stream([b"{}"])[len(HEADER) : -2]
    with pytest.raises(ValueError, match=r"not a \(leaf_hash, leaf\) row"):
        copy_rows(good + row + treehash.COPY_TRAILER, 0)


@pytest.mark.parametrize(("copy_rows", "parents"), IMPLEMENTATIONS, ids=IDS)
def test_b_lengths_past_the_data_wait_for_more_and_offsets_outside_it_are_refused(
    copy_rows: CopyRows, parents: Callable[[bytes], bytes]
) -> None:
    row = struct.pack(">hi", 2, 32) + bytes(32) + struct.pack(">i", 2**31 - 1) + b"x"
    assert copy_rows(row, 0) == (0, b"", b"")  # a leaf said to be 2 GB: not complete, so nothing read
    for offset in (-1, len(row) + 1):
        with pytest.raises(ValueError, match="offset"):
            copy_rows(row, offset)
    with pytest.raises(ValueError, match="32-byte"):
        parents(bytes(33))


@pytest.mark.parametrize(("copy_rows", "parents"), IMPLEMENTATIONS, ids=IDS)
def test_t5_parents_are_rfc_9162_node_hashes(copy_rows: CopyRows, parents: Callable[[bytes], bytes]) -> None:
    level = b"".join(hashlib.sha256(bytes([n])).digest() for n in range(7))
    expected = b"".join(verifier.node_hash(level[i : i + 32], level[i + 32 : i + 64]) for i in range(0, 192, 64))
    assert parents(level) == expected  # the odd seventh hash has no parent yet
    assert parents(b"") == b""


@settings(max_examples=60, deadline=None)
@given(count=st.integers(min_value=0, max_value=300))
def test_t5_levels_give_the_streaming_roots_peaks_at_every_size(count: int) -> None:
    digests = [hashlib.sha256(n.to_bytes(4, "big")).digest() for n in range(count)]
    levels, root = treehash.Levels(b"".join(digests)), verifier.StreamingRoot()
    assert levels.size == count and levels.peaks(0) == ()
    for size, digest in enumerate(digests, start=1):
        root.add(digest)
        assert levels.peaks(size) == root.peaks
    with pytest.raises(ValueError, match="leaves"):
        levels.peaks(count + 1)


def test_the_copy_header_is_read_whole_or_waited_for() -> None:
    extension = treehash.COPY_SIGNATURE + bytes(4) + struct.pack(">i", 3) + b"abc"
    assert treehash.copy_header_length(extension[:-1]) == 0
    assert treehash.copy_header_length(extension) == len(extension)
    assert treehash.copy_header_length(HEADER) == len(HEADER)
    with pytest.raises(ValueError, match="not a binary COPY"):
        treehash.copy_header_length(b"PGCOPX\n\xff\r\n\x00" + bytes(8))
