"""T6: random logs of up to 1000 leaves: every inclusion and consistency proof the writer gives verifies with
the independent verifier, and the root equals pymerkle's (an independent RFC 9162 implementation)."""

from __future__ import annotations

import hashlib
import warnings

from hypothesis import given, settings
from hypothesis import strategies as st
from pymerkle import InmemoryTree

from service.auditlog import merkle, verifier
from service.auditlog.merkle_tree import MerkleTree


def _leaves(count: int, seed: bytes) -> list[bytes]:
    # Varied lengths, including empty leaves, derived from the seed.
    return [hashlib.sha256(seed + i.to_bytes(4, "big")).digest()[: i % 40] for i in range(count)]


def _pymerkle_root(tree: InmemoryTree, size: int) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return bytes(tree.get_state(size))


@settings(max_examples=25, deadline=None)
@given(count=st.integers(min_value=1, max_value=1000), seed=st.binary(max_size=8), data=st.data())
def test_t6_random_log_proofs_verify_and_roots_agree(count: int, seed: bytes, data: st.DataObject) -> None:
    leaves = _leaves(count, seed)
    ours, theirs, streaming = MerkleTree(), InmemoryTree(algorithm="sha256"), verifier.StreamingRoot()
    for leaf in leaves:
        digest = merkle.hash_leaf(leaf)
        ours.append(digest)
        theirs.append_entry(leaf)
        streaming.add(verifier.leaf_hash(leaf))
    assert ours.root() == _pymerkle_root(theirs, count) == streaming.root()

    for index in range(count):  # every inclusion proof in the whole tree
        assert verifier.verify_inclusion(
            ours.leaf_hash(index), index, count, ours.inclusion_proof(index, count), ours.root()
        )
    for first in range(1, count + 1):  # every consistency proof into the whole tree
        assert verifier.verify_consistency(
            first, count, ours.root(first), ours.root(), ours.consistency_proof(first, count)
        )

    sizes = data.draw(st.lists(st.integers(min_value=1, max_value=count), min_size=1, max_size=8))
    for size in sizes:  # earlier tree sizes too: roots, every inclusion and consistency proof at that size
        assert (
            ours.root(size)
            == _pymerkle_root(theirs, size)
            == merkle.root_from_leaf_hashes([merkle.hash_leaf(leaf) for leaf in leaves[:size]])
        )
        for index in range(size):
            assert verifier.verify_inclusion(
                ours.leaf_hash(index), index, size, ours.inclusion_proof(index, size), ours.root(size)
            )
        first = data.draw(st.integers(min_value=1, max_value=size))
        assert verifier.verify_consistency(
            first, size, ours.root(first), ours.root(size), ours.consistency_proof(first, size)
        )


@settings(max_examples=50, deadline=None)
@given(count=st.integers(min_value=2, max_value=300), seed=st.binary(max_size=8), data=st.data())
def test_t6_a_changed_leaf_or_proof_fails_verification(count: int, seed: bytes, data: st.DataObject) -> None:
    tree = MerkleTree()
    for leaf in _leaves(count, seed):
        tree.append(merkle.hash_leaf(leaf))
    index = data.draw(st.integers(min_value=0, max_value=count - 1))
    proof = tree.inclusion_proof(index, count)
    wrong_leaf = merkle.hash_leaf(b"not the leaf")
    assert not verifier.verify_inclusion(wrong_leaf, index, count, proof, tree.root())
    if proof:
        position = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        flipped = bytes([proof[position][0] ^ 1]) + proof[position][1:]
        assert not verifier.verify_inclusion(
            tree.leaf_hash(index), index, count, [*proof[:position], flipped, *proof[position + 1 :]], tree.root()
        )
    first = data.draw(st.integers(min_value=1, max_value=count - 1))
    assert not verifier.verify_consistency(first, count, wrong_leaf, tree.root(), tree.consistency_proof(first, count))


def test_t6_a_full_thousand_entry_log() -> None:
    leaves = _leaves(1000, b"thousand")
    ours, theirs = MerkleTree(), InmemoryTree(algorithm="sha256")
    for leaf in leaves:
        ours.append(merkle.hash_leaf(leaf))
        theirs.append_entry(leaf)
    for size in range(1, 1001):
        assert ours.root(size) == _pymerkle_root(theirs, size)
    for index in range(1000):
        assert verifier.verify_inclusion(
            ours.leaf_hash(index), index, 1000, ours.inclusion_proof(index, 1000), ours.root()
        )
    for first in range(1, 1001):
        assert verifier.verify_consistency(
            first, 1000, ours.root(first), ours.root(), ours.consistency_proof(first, 1000)
        )
