"""Strict JSON parsing: catalogue B4-B9 and B11, plus D6 (errors never echo payload values).

Pure tests: no database, no server. Payloads are synthetic; none holds patient data.
"""

from __future__ import annotations

import gc
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from service.errors import Code, HandoverError
from service.strictjson import MAX_DEPTH, MAX_SAFE_INTEGER, parse_strict_json

MARKER = "MARKER-7f3a"  # a value that must never appear in an error text


def refused(raw: bytes) -> HandoverError:
    with pytest.raises(HandoverError) as caught:
        parse_strict_json(raw)
    assert caught.value.code is Code.INVALID_JSON
    assert caught.value.status == 400
    return caught.value


def nested(depth: int, *, kinds: str = "[") -> str:
    """`depth` nested containers (cycling through `kinds`), innermost empty."""
    opening = "".join(kinds[i % len(kinds)] for i in range(depth))
    closing = "".join("]" if ch == "[" else "}" for ch in reversed(opening))
    body = opening.replace("{", '{"k":')
    # an object that still has to hold its child needs a key; the innermost object is left empty
    if body.endswith('{"k":'):
        body = body[: -len('"k":')]
    return body + closing


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


def same_typed(a: Any, b: Any) -> bool:
    """Equal, and every number has the same Python type (so 1 and 1.0 differ)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_typed(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_typed(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# --- accepted input -------------------------------------------------------------------------------------------


def test_plain_object_parses() -> None:
    raw = b'{"resourceType": "Bundle", "entry": [{"n": 1, "x": 2.5, "t": true, "f": false, "z": null}]}'
    assert parse_strict_json(raw) == {
        "resourceType": "Bundle",
        "entry": [{"n": 1, "x": 2.5, "t": True, "f": False, "z": None}],
    }


def test_surrounding_json_whitespace_is_accepted() -> None:
    assert parse_strict_json(b' \t\r\n{"a": [ 1 , 2 ]}\r\n ') == {"a": [1, 2]}


def test_floats_stay_floats_and_integers_stay_ints() -> None:
    value = parse_strict_json(b'{"i": 1, "f": 1.0, "e": 1e2, "neg": -0.0, "small": 1e-400}')
    assert type(value["i"]) is int
    assert type(value["f"]) is float
    assert value["f"] == 1.0
    assert type(value["e"]) is float
    assert value["e"] == 100.0
    assert math.copysign(1.0, value["neg"]) == -1.0
    assert value["small"] == 0.0


def test_non_ascii_text_and_valid_surrogate_pairs_are_accepted() -> None:
    raw = '{"name": "Zoë", "emoji": "\\ud83d\\ude00", "raw": "\U0001f600"}'.encode()
    assert parse_strict_json(raw) == {"name": "Zoë", "emoji": "\U0001f600", "raw": "\U0001f600"}


def test_b5_escaped_backslash_before_u_is_not_a_surrogate_escape() -> None:
    # "\\ud800" is a backslash followed by the letters u, d, 8, 0, 0: no surrogate at all
    assert parse_strict_json(b'{"a": "\\\\ud800"}') == {"a": "\\ud800"}


def test_b6_equal_keys_in_sibling_objects_are_not_duplicates() -> None:
    assert parse_strict_json(b'{"a": {"type": 1}, "b": {"type": 2}}') == {"a": {"type": 1}, "b": {"type": 2}}


def test_b8_safe_integer_boundaries_are_accepted() -> None:
    raw = f'{{"max": {MAX_SAFE_INTEGER}, "min": {-MAX_SAFE_INTEGER}}}'.encode()
    assert parse_strict_json(raw) == {"max": MAX_SAFE_INTEGER, "min": -MAX_SAFE_INTEGER}


def test_b8_long_digit_runs_inside_strings_do_not_cause_refusal() -> None:
    raw = b'{"id": "12345678901234567890123", "code": "1e400", "n": 7, "x": 1e100}'
    assert parse_strict_json(raw) == {"id": "12345678901234567890123", "code": "1e400", "n": 7, "x": 1e100}


def test_b8_large_finite_floats_are_accepted() -> None:
    value = parse_strict_json(b'{"a": 1.7976931348623157e308, "b": 12345678901234567890.5}')
    assert value == {"a": 1.7976931348623157e308, "b": 12345678901234567890.5}
    assert type(value["b"]) is float


def test_b9_depth_exactly_64_is_accepted() -> None:
    raw = ('{"a":' + nested(MAX_DEPTH - 1) + "}").encode()
    assert depth_of(parse_strict_json(raw)) == MAX_DEPTH


def test_b9_depth_64_of_mixed_objects_and_arrays_is_accepted() -> None:
    raw = nested(MAX_DEPTH, kinds="{[").encode()
    assert depth_of(parse_strict_json(raw)) == MAX_DEPTH


def test_ten_mebibyte_document_parses_correctly() -> None:
    entries = [
        {
            "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}",
            "resource": {
                "resourceType": "Observation",
                "id": f"obs-{i}",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
                "valueQuantity": {"value": 60 + i % 40 + 0.5, "unit": "beats/minute", "code": "/min"},
                "component": [i, -i, i * 1000, True, None, "\u00e9\U0001f600"],
            },
        }
        for i in range(36_000)
    ]
    raw = json.dumps({"resourceType": "Bundle", "type": "message", "entry": entries}).encode()
    assert len(raw) > 10 * 2**20
    value = parse_strict_json(raw)
    assert value == json.loads(raw)
    assert value["entry"][35_999]["resource"]["id"] == "obs-35999"


# --- B4: encodings ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'\xef\xbb\xbf{"a": 1}', id="utf8-bom"),
        pytest.param('\ufeff{"a": 1}'.encode("utf-16-le"), id="utf16le-bom"),
        pytest.param('\ufeff{"a": 1}'.encode("utf-16-be"), id="utf16be-bom"),
        pytest.param('\ufeff{"a": 1}'.encode("utf-32-le"), id="utf32le-bom"),
        pytest.param('\ufeff{"a": 1}'.encode("utf-32-be"), id="utf32be-bom"),
        pytest.param('{"a": 1}'.encode("utf-16-le"), id="utf16le-no-bom"),
        pytest.param('{"a": 1}'.encode("utf-32-be"), id="utf32be-no-bom"),
    ],
)
def test_b4_utf16_and_utf32_and_byte_order_marks_are_refused(raw: bytes) -> None:
    error = refused(raw)
    assert "UTF" in error.text


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(b"\xc0\xaf", id="overlong-2-byte-slash"),
        pytest.param(b"\xe0\x80\xaf", id="overlong-3-byte-slash"),
        pytest.param(b"\xf0\x80\x80\xaf", id="overlong-4-byte-slash"),
        pytest.param(b"\xc1\xbf", id="overlong-2-byte"),
        pytest.param(b"\xed\xa0\x80", id="encoded-high-surrogate"),
        pytest.param(b"\xed\xbf\xbf", id="encoded-low-surrogate"),
        pytest.param(b"\xf4\x90\x80\x80", id="above-u10ffff"),
        pytest.param(b"\xff", id="byte-ff"),
        pytest.param(b"\x80", id="lone-continuation"),
        pytest.param(b"\xe2\x82", id="truncated-sequence"),
        pytest.param(b"\xe9", id="latin-1-e-acute"),
    ],
)
def test_b4_invalid_utf8_is_refused_with_byte_offset(bad: bytes) -> None:
    error = refused(b'{"ab": "' + bad + b'"}')
    assert "UTF-8" in error.text
    assert "byte offset 8" in error.text


# --- B5: lone surrogates ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"a": "\\ud800"}', id="high-alone"),
        pytest.param(b'{"a": "\\uDC00"}', id="low-alone-uppercase"),
        pytest.param(b'{"a": "x\\ud800y"}', id="high-inside-text"),
        pytest.param(b'{"a": "\\ud800\\ud800"}', id="two-highs"),
        pytest.param(b'{"a": "\\ude00\\ud83d"}', id="reversed-pair"),
        pytest.param(b'{"a": "\\ud83d\\u0041"}', id="high-then-ascii-escape"),
        pytest.param(b'{"\\ud800": 1}', id="in-key"),
        pytest.param(b'{"a": ["ok", "\\udfff"]}', id="in-array"),
        pytest.param(b'{"a": {"b": [{"c": "\\ud800"}]}}', id="at-depth"),
        pytest.param(b'{"a": "\\\\\\ud800"}', id="after-escaped-backslash"),
    ],
)
def test_b5_lone_surrogate_escapes_are_refused(raw: bytes) -> None:
    error = refused(raw)
    assert "surrogate" in error.text


def test_b5_lone_surrogate_is_located() -> None:
    error = refused(b'{\n  "a": "ok",\n  "b": "\\ud800"\n}')
    assert "line 3, column 9" in error.text


# --- B6: duplicate keys -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"type": "message", "type": "history"}', id="top-level"),
        pytest.param(b'{"a": 1, "b": 2, "a": 1}', id="same-value"),
        pytest.param(b'{"entry": [{"resource": {"type": 1, "type": 2}}]}', id="inside-array"),
        pytest.param(b'{"a": {"b": {"c": {"d": {"x": 1, "x": 1}}}}}', id="deep"),
        pytest.param(b'{"\\u0061": 1, "a": 2}', id="escaped-spelling"),
    ],
)
def test_b6_duplicate_keys_at_depth_are_refused(raw: bytes) -> None:
    error = refused(raw)
    assert "same key" in error.text


# --- B7: NaN and infinities -------------------------------------------------------------------------------------


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("template", ['{{"a": {}}}', '{{"a": [1, {}]}}', '{{"a": {{"b": [{{"c": {}}}]}}}}'])
def test_b7_nan_and_infinity_are_refused(constant: str, template: str) -> None:
    error = refused(template.format(constant).encode())
    assert "NaN" in error.text


@pytest.mark.parametrize("spelling", ["nan", "inf", "-inf", "infinity", "+Infinity", "-NaN"])
def test_b7_other_spellings_are_syntax_errors(spelling: str) -> None:
    refused(f'{{"a": {spelling}}}'.encode())


# --- B8: numbers ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "literal",
    [
        pytest.param(str(MAX_SAFE_INTEGER + 1), id="2^53"),
        pytest.param(str(-MAX_SAFE_INTEGER - 1), id="-2^53"),
        pytest.param("9999999999999999", id="16-nines"),
        pytest.param("100000000000000000000", id="1e20-as-int"),
        pytest.param("-12345678901234567890123", id="negative-23-digits"),
    ],
)
def test_b8_integers_beyond_2_53_are_refused(literal: str) -> None:
    error = refused(f'{{"a": [0, {{"b": {literal}}}]}}'.encode())
    assert "integer" in error.text


@pytest.mark.parametrize(
    "literal",
    [
        pytest.param("1" * 5000, id="5000-digit-int"),
        pytest.param("-" + "9" * 5000, id="5000-digit-negative-int"),
        pytest.param("1" * 100_000, id="100000-digit-int"),
        pytest.param("1" * 5000 + ".5", id="5000-digit-float"),
        pytest.param("0." + "1" * 5000, id="5000-digit-fraction"),
        pytest.param("1e" + "1" * 5000, id="5000-digit-exponent"),
    ],
)
def test_b8_5000_digit_numbers_are_refused_not_value_error(literal: str) -> None:
    refused(f'{{"a": {literal}}}'.encode())


@pytest.mark.parametrize("literal", ["1e400", "-1e400", "1E+309", "2e308", "1" * 40 + "e300"])
def test_b8_float_overflow_1e400_is_refused(literal: str) -> None:
    error = refused(f'{{"a": {literal}}}'.encode())
    assert "finite" in error.text


# --- B9: depth --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(("{" + '"a":{' * 100_000 + "}" * 100_001).encode(), id="objects"),
        pytest.param(("{" + '"a":' + "[" * 100_000 + "]" * 100_000 + "}").encode(), id="arrays-in-object"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="top-level-arrays"),
        pytest.param(("{" + '"a":[{' * 50_000 + "}]" * 50_000 + "}").encode(), id="mixed"),
        pytest.param(b'{"a":' + b"[" * 100_000, id="unclosed"),
    ],
)
def test_b9_nesting_100000_deep_is_refused_not_recursion_error(raw: bytes) -> None:
    refused(raw)


def test_b9_depth_65_is_refused() -> None:
    error = refused(('{"a":' + nested(MAX_DEPTH) + "}").encode())
    assert "nested deeper than 64" in error.text


def test_b9_depth_65_of_mixed_objects_and_arrays_is_refused() -> None:
    refused(('{"k":' + nested(MAX_DEPTH, kinds="[{") + "}").encode())


def test_b9_one_deep_branch_among_shallow_ones_is_refused() -> None:
    shallow = ", ".join(f'"s{i}": [1, {{"x": 2}}]' for i in range(100))
    refused(('{"deep": ' + nested(MAX_DEPTH) + ", " + shallow + "}").encode())


# --- B11: shape of the whole body ---------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b" ", b"\r\n\t "])
def test_b11_empty_body_is_refused(raw: bytes) -> None:
    error = refused(raw)
    assert "empty" in error.text


@pytest.mark.parametrize("raw", [b"[]", b'[{"a": 1}]', b'"text"', b"1", b"1.5", b"true", b"null"])
def test_b11_non_object_top_level_is_refused(raw: bytes) -> None:
    error = refused(raw)
    assert "top level" in error.text


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"{}{}", id="two-objects"),
        pytest.param(b'{"a": 1}\n{"b": 2}', id="two-lines"),
        pytest.param(b"{} []", id="object-then-array"),
        pytest.param(b"{}x", id="garbage"),
        pytest.param(b"{},", id="comma"),
        pytest.param(b'{"a": 1}\x00', id="nul"),
    ],
)
def test_b11_trailing_garbage_and_concatenated_documents_are_refused(raw: bytes) -> None:
    error = refused(raw)
    assert "after the end" in error.text


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": }',
        b'{"a" 1}',
        b'{"a": 1,}',
        b"{'a': 1}",
        b'{"a": 01}',
        b'{"a": .5}',
        b'{"a": "unterminated}',
        b'{"a": "tab\there"}',
        b'{"a": "\\x41"}',
        b'{"a": "\\u12"}',
        b"{a: 1}",
        b'{"a": 1 /* comment */}',
        b'{"a": undefined}',
    ],
)
def test_syntax_errors_are_refused_with_a_position(raw: bytes) -> None:
    error = refused(raw)
    assert "line 1, column" in error.text
    assert "byte offset" in error.text


def test_syntax_error_position_counts_bytes_after_multibyte_text() -> None:
    error = refused('{"é": 1 x}'.encode())
    assert "column 9" in error.text
    assert "byte offset 9" in error.text


# --- D6: no payload in errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        f'{{"{MARKER}": 1, "{MARKER}": 2}}',
        f'{{"a": "{MARKER}", "b": NaN}}',
        f'{{"a": "{MARKER}\\ud800"}}',
        f'{{"a": "{MARKER}" "b"}}',
        f'{{"a": "{MARKER}\\q"}}',
        f'{{"a": "{MARKER}\x01"}}',
        f'{{"a": 1}} "{MARKER}"',
        f'["{MARKER}"]',
        f'"{MARKER}"',
        f'{{"a": 9{MARKER}}}',
        f'{{"{MARKER}": 12345678901234567890}}',
        f'{{"{MARKER}": 1e999}}',
    ],
)
def test_d6_error_text_never_quotes_payload_values(raw: str) -> None:
    error = refused(raw.encode())
    assert MARKER not in error.text
    assert all(MARKER not in issue.text for issue in error.issues)


def test_d6_invalid_utf8_error_does_not_echo_bytes() -> None:
    error = refused(b'{"a": "' + MARKER.encode() + b'\xff"}')
    assert MARKER not in error.text
    assert "\\xff" not in error.text


# --- robustness -------------------------------------------------------------------------------------------------


def test_garbage_collector_state_is_restored_after_success_and_refusal() -> None:
    assert gc.isenabled()
    parse_strict_json(b'{"a": [1, 2, {"b": 3}]}')
    assert gc.isenabled()
    refused(b'{"a": 1, "a": 2}')
    assert gc.isenabled()
    refused(b"[" * 100_000)
    assert gc.isenabled()
    gc.disable()
    try:
        parse_strict_json(b'{"a": 1}')
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=40,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    document=st.dictionaries(st.text(), json_values, max_size=6),
    ascii_only=st.booleans(),
    indent=st.none() | st.just(2),
)
def test_property_valid_documents_round_trip_with_types(
    document: dict[str, Any], ascii_only: bool, indent: int | None
) -> None:
    assume(depth_of(document) <= MAX_DEPTH)
    raw = json.dumps(document, ensure_ascii=ascii_only, indent=indent).encode("utf-8")
    assert same_typed(parse_strict_json(raw), document)


def outcome_of(raw: bytes) -> dict[str, Any] | HandoverError:
    """The parsed object or the HandoverError; any other exception propagates and fails the test."""
    try:
        return parse_strict_json(raw)
    except HandoverError as error:
        return error


JSONISH = '{}[]":,0123456789.eE+- \t\n\\uDd8abcfnrtlsNIy'


@settings(max_examples=500)
@given(raw=st.binary(max_size=200) | st.text(alphabet=JSONISH, max_size=200).map(str.encode))
def test_property_arbitrary_bytes_parse_or_raise_handover_error(raw: bytes) -> None:
    outcome = outcome_of(raw)
    if isinstance(outcome, HandoverError):
        assert outcome.code is Code.INVALID_JSON
    else:
        assert outcome == json.loads(raw)


@settings(max_examples=200)
@given(document=st.dictionaries(st.text(max_size=5), json_values, min_size=1, max_size=4), data=st.data())
def test_property_mutated_documents_parse_or_raise_handover_error(
    document: dict[str, Any], data: st.DataObject
) -> None:
    raw = bytearray(json.dumps(document).encode())
    position = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    raw[position] = data.draw(st.integers(min_value=0, max_value=255))
    outcome = outcome_of(bytes(raw))
    if isinstance(outcome, HandoverError):
        assert outcome.code is Code.INVALID_JSON
    else:
        assert isinstance(outcome, dict)
