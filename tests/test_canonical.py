"""The fast canonicaliser (service/canonical.py) against the reference `rfc8785` package: the same bytes, or
the same refusal, on a large generated corpus and on the cases its fast path must hand over."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.canonical import _plain, canonical_json

ROOT = Path(__file__).resolve().parents[1]

# Every code point, lone surrogates included, with the awkward ones (controls, quotes, BMP above the
# surrogates, astral) drawn often.
_awkward = st.sampled_from(['"', "\\", "\x00", "\x1f", "\x7f", "\u2028", "\ue000", "\uffff", "\U0001f600", "\ud800"])
_text = st.text(st.one_of(st.characters(), _awkward), max_size=12)
_numbers = st.one_of(
    st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    st.integers(),  # beyond the safe range too: both must refuse
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1e21, 1e-7, 100.0, 5e-324, 1.7976931348623157e308]),
)
_scalars = st.one_of(st.none(), st.booleans(), _numbers, _text)
_json = st.recursive(
    _scalars,
    lambda children: st.one_of(st.lists(children, max_size=6), st.dictionaries(_text, children, max_size=6)),
    max_leaves=40,
)


def reference(value: Any) -> bytes | type[Exception]:
    try:
        return bytes(rfc8785.dumps(value))
    except ValueError as err:  # CanonicalizationError, or UnicodeEncodeError for a lone surrogate key
        return type(err)


def fast(value: Any) -> bytes | type[Exception]:
    try:
        return canonical_json(value)
    except ValueError as err:  # CanonicalizationError, or UnicodeEncodeError for a lone surrogate key
        return type(err)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_json)
def test_fast_canonical_json_is_byte_identical_to_rfc8785(value: Any) -> None:
    assert fast(value) == reference(value)


@settings(max_examples=1000, deadline=None)
@given(st.dictionaries(_text, st.one_of(st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1), _text)))
def test_fast_path_taken_and_identical_for_plain_objects(value: dict[str, Any]) -> None:
    assert fast(value) == reference(value)


@pytest.mark.parametrize(
    "value",
    [
        {"\U0001f600": 1, "\ue000": 2},  # UTF-16 order differs from code point order
        {"n": 1.0},
        {"n": 2**53},
        {"t": (1, 2)},
        {"s": "\ud800"},
    ],
)
def test_values_outside_the_fast_path_are_handed_to_the_reference(value: Any) -> None:
    assert not _plain(value) or "\ud800" in json.dumps(value, ensure_ascii=False)
    assert fast(value) == reference(value)


def test_every_example_message_canonicalises_identically_on_the_fast_path() -> None:
    examples = sorted((ROOT / "fhir_profiles" / "examples").rglob("*.json"))
    assert len(examples) > 10
    for path in examples:
        doc = json.loads(path.read_text(encoding="utf-8"))
        assert canonical_json(doc) == bytes(rfc8785.dumps(doc)), path.name
