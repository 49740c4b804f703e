"""The nesting-depth check read from the text's brackets (`_depth_from_text`) agrees with the walk of the parsed
tree (`_too_deep`) whenever it answers: on generated documents whose strings hold brackets, quotes and
backslashes, and on nestings either side of MAX_DEPTH."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.strictjson import MAX_DEPTH, _depth_from_text, _too_deep, parse_strict_json

TRICKY_TEXT = st.text(alphabet='ab{}[]"\\/:,\n\u00e9', max_size=8)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | TRICKY_TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TRICKY_TEXT, children, max_size=3),
    max_leaves=40,
)


def _nested(depth: int, kinds: str) -> Any:
    value: Any = "x"
    for level in range(depth):
        value = [value] if kinds[level % len(kinds)] == "[" else {"k": value}
    return value


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(value=JSON, indent=st.sampled_from([None, 1]), ascii_only=st.booleans())
def test_depth_from_text_agrees_with_the_tree_walk(value: Any, indent: int | None, ascii_only: bool) -> None:
    doc = {"v": value}
    raw = json.dumps(doc, indent=indent, ensure_ascii=ascii_only).encode()
    from_text = _depth_from_text(raw)
    assert from_text is None or from_text == _too_deep(doc)


@pytest.mark.parametrize("kinds", ["[", "{", "[{", "{[", "[[{"])
@pytest.mark.parametrize("depth", [MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1])
@pytest.mark.parametrize("label", ["plain", "brackets [}", 'quote " and \\ backslash'])
def test_depth_from_text_at_the_limit(kinds: str, depth: int, label: str) -> None:
    doc = {"label": label, "v": _nested(depth, kinds)}
    raw = json.dumps(doc).encode()
    from_text = _depth_from_text(raw)
    assert from_text is None or from_text == _too_deep(doc)
    if "[" not in label:
        assert from_text is not None  # quotes and backslashes alone do not stop the text reading


def test_depth_from_text_is_used_by_the_parse() -> None:
    doc = {"a": _nested(MAX_DEPTH - 1, "[{")}
    assert parse_strict_json(json.dumps(doc).encode()) == doc
