"""T5: the offline verifier accepts exactly the `wantErr: false` cases of the transparency-dev/merkle vectors,
and the writer's proofs for the RFC 6962 reference leaves are the ones those vectors give."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from service.auditlog import merkle, verifier
from service.auditlog.merkle_tree import MerkleTree
from tests.auditlog.audit_fixtures import VECTORS

# The leaves behind the vectors (transparency-dev/merkle proof/verify_test.go, the RFC 6962 reference set).
REFERENCE_LEAVES = [
    bytes.fromhex(h)
    for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")
]


def _cases(kind: str) -> list[tuple[str, dict[str, Any]]]:
    directory = VECTORS / kind
    assert directory.is_dir(), f"the vectors are missing: {directory}"
    return [(str(p.relative_to(VECTORS)), json.loads(p.read_text())) for p in sorted(directory.rglob("*.json"))]


def _b(value: str) -> bytes:
    return base64.b64decode(value)


INCLUSION = _cases("inclusion")
CONSISTENCY = _cases("consistency")


def test_the_vector_sets_have_both_kinds_of_case() -> None:
    for cases in (INCLUSION, CONSISTENCY):
        wanted = [case["wantErr"] for _, case in cases]
        assert wanted.count(False) >= 5 and wanted.count(True) >= 50


@pytest.mark.parametrize(("name", "case"), INCLUSION, ids=[n for n, _ in INCLUSION])
def test_t5_inclusion_vector(name: str, case: dict[str, Any]) -> None:
    accepted = verifier.verify_inclusion(
        _b(case["leafHash"]), case["leafIdx"], case["treeSize"], [_b(p) for p in case["proof"] or []], _b(case["root"])
    )
    assert accepted is not case["wantErr"], case["desc"]


@pytest.mark.parametrize(("name", "case"), CONSISTENCY, ids=[n for n, _ in CONSISTENCY])
def test_t5_consistency_vector(name: str, case: dict[str, Any]) -> None:
    accepted = verifier.verify_consistency(
        case["size1"], case["size2"], _b(case["root1"]), _b(case["root2"]), [_b(p) for p in case["proof"] or []]
    )
    assert accepted is not case["wantErr"], case["desc"]


def _reference_tree() -> MerkleTree:
    tree = MerkleTree()
    for leaf in REFERENCE_LEAVES:
        tree.append(merkle.hash_leaf(leaf))
    return tree


def reference_inclusion_cases(leaf_hash: Callable[[int], bytes]) -> list[tuple[str, dict[str, Any]]]:
    """The accepted inclusion vectors over the reference leaves (`leaf_hash(i)` is leaf i's hash as the code under
    test computed it: a vector whose leaf differs is over other leaves); at least five, or the vectors changed."""
    cases = [
        (name, case)
        for name, case in INCLUSION
        if not case["wantErr"]
        and case["treeSize"] <= len(REFERENCE_LEAVES)
        and len(_b(case["root"])) == 32
        and leaf_hash(case["leafIdx"]) == _b(case["leafHash"])
    ]
    assert len(cases) >= 5
    return cases


def test_writer_gives_the_vectors_inclusion_proofs_and_roots() -> None:
    tree = _reference_tree()
    for name, case in reference_inclusion_cases(tree.leaf_hash):
        assert tree.root(case["treeSize"]) == _b(case["root"]), name
        assert tree.inclusion_proof(case["leafIdx"], case["treeSize"]) == [_b(p) for p in case["proof"] or []], name


def test_writer_gives_the_vectors_consistency_proofs() -> None:
    tree = _reference_tree()
    checked = 0
    for name, case in CONSISTENCY:
        size1, size2 = case["size1"], case["size2"]
        if case["wantErr"] or not 0 < size1 <= size2 <= len(REFERENCE_LEAVES) or len(_b(case["root1"])) != 32:
            continue
        if tree.root(size1) != _b(case["root1"]):
            continue
        assert tree.root(size2) == _b(case["root2"]), name
        assert tree.consistency_proof(size1, size2) == [_b(p) for p in case["proof"] or []], name
        checked += 1
    assert checked >= 5


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert MerkleTree().root() == merkle.EMPTY_ROOT == verifier.StreamingRoot().root()
    assert merkle.EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_writer_refuses_impossible_proofs() -> None:
    tree = _reference_tree()
    for bad in ((8, 8), (0, 9), (-1, 3)):
        with pytest.raises(ValueError, match=r"size|index"):
            tree.inclusion_proof(*bad)
    for bad in ((0, 4), (5, 4), (1, 9)):
        with pytest.raises(ValueError, match=r"size|proof"):
            tree.consistency_proof(*bad)


def test_verifier_module_imports_nothing_from_the_writer() -> None:
    source = Path(verifier.__file__).read_text()
    assert "merkle" not in source.replace("RFC 9162", "").split('"""', 2)[2]
    assert "service." not in source
