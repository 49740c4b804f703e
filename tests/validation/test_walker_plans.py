"""The walker's precomputed plans agree with the rules they stand for: the one-lookup slice choice (`Node.
slice_lookup`) picks the same slice as trying each slice's discriminators in order, for every sliced element of
every profile, on values built from the discriminators themselves and on arbitrary JSON; and a value the walker
skips (its rule checks nothing of an untyped value) would have given no issue."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from service.validation import load_validator
from service.validation.bundle import BundleIndex
from service.validation.model import Node, Slice
from service.validation.walker import Walker, _discriminates, _slice_for
from tests.validation.test_validator_robustness import JSON


def _sliced_nodes() -> list[Node]:
    found: list[Node] = []
    for profile in load_validator().conformance.profiles.values():
        stack = [profile.root]
        while stack:
            node = stack.pop()
            if node.slices:
                found.append(node)
            stack += [*node.children.values(), *(s.node for s in node.slices.values())]
    return found


SLICED = _sliced_nodes()
KEYS = sorted({part for node in SLICED for s in node.slices.values() for d in s.discriminators for part in d.path})
STRINGS = sorted(
    {d.value for node in SLICED for s in node.slices.values() for d in s.discriminators if isinstance(d.value, str)}
)


def _by_trying_each(node: Node, value: object) -> Slice | None:
    return next((s for s in node.slices.values() if all(_discriminates(d, value) for d in s.discriminators)), None)


VALUES = st.recursive(
    st.sampled_from(STRINGS) | JSON,
    lambda children: st.dictionaries(st.sampled_from([*KEYS, "resourceType", "x"]), children, max_size=3),
    max_leaves=6,
)


def test_some_sliced_elements_use_the_lookup() -> None:
    assert any(node.slice_lookup is not None for node in SLICED)


@settings(max_examples=400)
@given(value=VALUES)
def test_slice_lookup_picks_the_slice_trying_each_would(value: Any) -> None:
    for node in SLICED:
        assert _slice_for(node, value) is _by_trying_each(node, value)


def _all_nodes() -> list[Node]:
    found: list[Node] = []
    for profile in load_validator().conformance.profiles.values():
        stack = [profile.root]
        while stack:
            node = stack.pop()
            found.append(node)
            stack += [*node.children.values(), *(s.node for s in node.slices.values())]
    return found


NODES = _all_nodes()


@settings(max_examples=100)
@given(value=VALUES)
def test_a_rule_that_checks_no_untyped_value_finds_nothing_in_any(value: Any) -> None:
    """What `_apply` skips (a non-choice value of a rule with `checks_untyped_value` False) would find nothing."""
    conformance = load_validator().conformance
    resource = {"resourceType": "Patient"}
    for node in NODES:
        rule = node.rule
        if rule is None or rule.checks_untyped_value:
            continue
        issues: list[Any] = []
        walker = Walker(conformance, BundleIndex({}), issues)
        walker._check_value(rule, value, "X", resource, None)
        walker.drain()
        assert issues == []
        assert not walker._queue
