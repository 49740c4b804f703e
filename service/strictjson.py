"""Strict JSON: turning request bytes into one JSON object, or refusing them (catalogue B4-B9, B11).

This module owns the hub's only JSON entry point for untrusted input. It accepts exactly one I-JSON
(RFC 7493) object encoded as strict UTF-8 and refuses everything a lenient parser would silently
accept or mangle: byte-order marks, invalid or overlong UTF-8, duplicate keys, NaN/Infinity, lone
surrogate escapes, integers a JavaScript or Java peer cannot hold exactly, non-finite floats, nesting
deeper than `MAX_DEPTH`, a non-object top level and trailing data.

Numbers keep their JSON kind: integers become `int`, anything with a fraction or exponent becomes
`float`, so RFC 8785 canonicalisation later treats `1.0` and `1` alike.

Every refusal is a `HandoverError(Code.INVALID_JSON, ...)` whose text names the problem and, where it
is cheap to know, its position (line, column, byte offset). It never quotes the payload.
"""

from __future__ import annotations

import gc
import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain, compress, repeat
from operator import is_
from typing import Any, Final

from service.errors import Code, HandoverError

MAX_DEPTH: Final = 64
"""Deepest nesting of objects and arrays accepted; the top-level object is depth 1."""

MAX_SAFE_INTEGER: Final = 2**53 - 1
"""Largest integer magnitude every JSON peer (IEEE 754 double) represents exactly (RFC 7493 §2.2)."""

MAX_NUMBER_LENGTH: Final = 100
"""Longest number literal, in characters, accepted; anything longer is refused before conversion."""

_BOMS: Final = (
    (b"\x00\x00\xfe\xff", "UTF-32 byte-order mark"),
    (b"\xff\xfe\x00\x00", "UTF-32 byte-order mark"),
    (b"\xef\xbb\xbf", "UTF-8 byte-order mark"),
    (b"\xfe\xff", "UTF-16 byte-order mark"),
    (b"\xff\xfe", "UTF-16 byte-order mark"),
)

# Longest plain number that can be a safe integer: "-" and 16 digits (2**53 - 1 has 16 digits).
_SAFE_INTEGER_MAX_CHARS: Final = 17

# A surrogate escape (\uD800-\uDFFF) somewhere in the text: only then can a lone surrogate exist, because
# strict UTF-8 decoding has already refused surrogates encoded directly.
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")

# Every escape sequence, in order, so backslash parity is respected; group 1 marks a surrogate escape that is
# not the high half of a valid pair (a valid pair is consumed whole by the first alternative).
_ESCAPES: Final = re.compile(
    r"\\(?:u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|(u[dD][89a-fA-F][0-9a-fA-F]{2})|u[0-9a-fA-F]{4}|.)",
    re.DOTALL,
)

# The standard library's messages, mapped to our wording by prefix; its own messages may quote a character.
_DECODER_MESSAGES: Final = (
    ("Expecting value", "a value was expected"),
    ("Expecting property name", "an object key in double quotes was expected"),
    ("Expecting ':' delimiter", "a ':' after an object key was expected"),
    ("Expecting ',' delimiter", "a ',' or a closing bracket was expected"),
    ("Unterminated string", "a string is not terminated"),
    ("Invalid control character", "a string contains an unescaped control character"),
    ("Invalid \\uXXXX escape", "a string contains an invalid \\u escape"),
    ("Invalid \\escape", "a string contains an invalid escape sequence"),
    ("Illegal trailing comma", "a trailing comma is not allowed"),
    ("Extra data", "there is data after the end of the JSON document"),
)


def _refuse(text: str) -> HandoverError:
    return HandoverError(Code.INVALID_JSON, f"the body is not acceptable JSON: {text}")


def unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`json.loads` object_pairs_hook for small trusted-shape documents (JWS headers, token claims, the registry):
    ValueError naming the repeated member instead of silently keeping the last."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate member {key!r}")
        result[key] = value
    return result


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _refuse("an object has the same key more than once")
    return result


def _refuse_constant(_name: str) -> Any:
    raise _refuse("NaN, Infinity and -Infinity are not JSON numbers")


def _safe_int(literal: str) -> int:
    if len(literal) > _SAFE_INTEGER_MAX_CHARS:
        raise _refuse(f"an integer has more digits than the ±{MAX_SAFE_INTEGER} (2^53-1) range allows")
    value = int(literal)
    if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return value
    raise _refuse(f"an integer is outside the range ±{MAX_SAFE_INTEGER} (2^53-1)")


def _finite_float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_LENGTH:
        raise _refuse(f"a number is written with more than {MAX_NUMBER_LENGTH} characters")
    value = float(literal)
    if not math.isfinite(value):
        raise _refuse("a number is too large to represent as a finite double")
    return value


# Refuses duplicate keys and NaN/Infinity; checks every number literal on the way.
_CHECKING_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_object_without_duplicates,
    parse_constant=_refuse_constant,
    parse_int=_safe_int,
    parse_float=_finite_float,
    strict=True,
)
# The same, but numbers take the C fast path; used only when `_numbers_are_harmless` proves it safe.
_FAST_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_object_without_duplicates,
    parse_constant=_refuse_constant,
    strict=True,
)

# Maps ASCII digits to "0", "e"/"E" to "e", "+"/"-" to "+" and every other byte to a space.
_NUMBER_SHAPE: Final = bytes(
    ord("0") if b in b"0123456789" else ord("e") if b in b"eE" else ord("+") if b in b"+-" else ord(" ")
    for b in range(256)
)


def _numbers_are_harmless(raw: bytes) -> bool:
    """True if no number in `raw` can be unsafe, judged in C speed over the whole body.

    With no run of 16 digits anywhere, every integer has at most 15 digits (below 2^53-1), every literal is
    shorter than MAX_NUMBER_LENGTH, and with no exponent of 3+ digits every float is below 1e115, so finite.
    Digits inside strings can only make this answer False, which merely selects the checking decoder.
    """
    shape = raw.translate(_NUMBER_SHAPE)
    return b"0000000000000000" not in shape and b"e000" not in shape and b"e+000" not in shape


def _position(raw: bytes, byte_offset: int) -> str:
    line = raw.count(b"\n", 0, byte_offset) + 1
    line_start = raw.rfind(b"\n", 0, byte_offset) + 1
    column = len(raw[line_start:byte_offset].decode("utf-8", "replace")) + 1
    return f"line {line}, column {column} (byte offset {byte_offset})"


# Keeps only quotes and brackets of a JSON text, with both kinds of opening bracket as "(" and closing as ")".
_BRACKETS: Final = bytes.maketrans(b"{[}]", b"(())")
_NOT_BRACKETS: Final = bytes(byte for byte in range(256) if byte not in b'{}[]"')


def _depth_from_text(raw: bytes) -> bool | None:
    """Whether `raw`, a JSON text that has parsed, nests deeper than MAX_DEPTH, read from its brackets in C speed;
    None when a string holds a bracket (or the text cannot be read this way), and the tree must be walked.

    With escaped backslashes and then escaped quotes removed, every quote left delimits a string. Keeping only
    quotes and brackets, a string without brackets becomes `""`; once those are removed, no quote is left unless
    some string held a bracket. What remains are the brackets of the structure, and removing every `()` once per
    pass empties them in exactly as many passes as the deepest nesting."""
    if b"\\" in raw:
        raw = raw.replace(b"\\\\", b"")
    if b'\\"' in raw:
        raw = raw.replace(b'\\"', b"")
    shape = raw.translate(_BRACKETS, _NOT_BRACKETS).replace(b'""', b"")
    if b'"' in shape:
        return None
    for _depth in range(MAX_DEPTH):
        if not shape:
            return False
        shape = shape.replace(b"()", b"")
    return bool(shape)


def _too_deep(root: dict[str, Any]) -> bool:
    """Whether any object or array lies deeper than MAX_DEPTH (the root is depth 1).

    Walks level by level with C-level iterators, so the Python loop runs at most MAX_DEPTH times.
    """
    dicts: list[dict[str, Any]] = [root]
    lists: list[list[Any]] = []
    for _depth in range(MAX_DEPTH):
        children = list(chain(chain.from_iterable(map(dict.values, dicts)), chain.from_iterable(lists)))
        kinds = list(map(type, children))
        present = set(kinds)
        if dict not in present and list not in present:
            return False
        if len(present) == 1:  # a level of only objects or only arrays needs no sorting
            dicts, lists = (children, []) if dict in present else ([], children)
        else:
            dicts = list(compress(children, map(is_, kinds, repeat(dict))))
            lists = list(compress(children, map(is_, kinds, repeat(list))))
    return True


def _has_lone_surrogate(text: str, value: dict[str, Any]) -> bool:
    """Whether any key or string value holds a lone surrogate; C speed, re-encoding only when one may exist."""
    if _SURROGATE_ESCAPE.search(text) is None:
        return False
    try:
        json.dumps(value, ensure_ascii=False, check_circular=False).encode("utf-8", "strict")
    except UnicodeEncodeError:
        return True
    return False


def _lone_surrogate_offset(text: str) -> int | None:
    """Character offset of the first lone surrogate escape in a successfully parsed text, else None."""
    # All backslashes in parsed JSON sit inside strings and start well-formed escapes, so scanning escape by
    # escape from the start keeps backslash parity right.
    for match in _ESCAPES.finditer(text):
        if match.group(1) is not None:
            return match.start()
    return None


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building a large tree of fresh containers.

    A parse allocates only acyclic dicts and lists; without this the collector rescans them repeatedly and a
    10 MiB document parses several times slower. Only the caller that paused it resumes it.
    """
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _decode(decoder: json.JSONDecoder, text: str) -> Any:
    try:
        return decoder.decode(text)
    except json.JSONDecodeError as exc:
        reason = next((ours for prefix, ours in _DECODER_MESSAGES if exc.msg.startswith(prefix)), "syntax error")
        byte_offset = len(text[: exc.pos].encode("utf-8"))
        raise _refuse(f"{reason} at line {exc.lineno}, column {exc.colno} (byte offset {byte_offset})") from None
    except RecursionError:
        raise _refuse(f"objects and arrays are nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:
        # int()/float() limits (e.g. sys.int_info.str_digits_check_threshold) on a literal that slipped through.
        raise _refuse("a number cannot be converted") from None


def parse_strict_json(raw: bytes) -> dict[str, Any]:
    """Parse `raw` as exactly one strict JSON object and return it.

    Promises: a `dict` whose keys are unique at every depth, whose strings are valid Unicode scalar values,
    whose integers are `int` within ±(2^53-1), whose other numbers are finite `float`, and whose nesting of
    objects and arrays is at most MAX_DEPTH.

    Refuses with `HandoverError(Code.INVALID_JSON)`: an empty body; a UTF-8, UTF-16 or UTF-32 byte-order mark;
    invalid UTF-8 (overlong forms, encoded surrogates, truncated sequences); JSON syntax errors; duplicate keys;
    NaN and ±Infinity; lone surrogate escapes; out-of-range integers and over-long numbers; floats that
    overflow; nesting deeper than MAX_DEPTH; a top level that is not an object; and trailing data such as a
    second document. The error text never quotes the payload.
    """
    if not raw or raw.isspace():
        raise _refuse("the body is empty")
    for bom, name in _BOMS:
        if raw.startswith(bom):
            raise _refuse(f"the body starts with a {name}; send UTF-8 without a byte-order mark")
    if b"\x00" in raw[:4]:
        raise _refuse("the body looks like UTF-16 or UTF-32; send UTF-8")
    try:
        text = raw.decode("utf-8", "strict")
    except UnicodeDecodeError as exc:
        raise _refuse(f"the body is not valid UTF-8 at {_position(raw, exc.start)}") from None

    decoder = _FAST_DECODER if _numbers_are_harmless(raw) else _CHECKING_DECODER
    with _collector_paused():
        value = _decode(decoder, text)
        if not isinstance(value, dict):
            raise _refuse("the top level must be a JSON object")
        too_deep = _depth_from_text(raw)
        if too_deep if too_deep is not None else _too_deep(value):
            raise _refuse(f"objects and arrays are nested deeper than {MAX_DEPTH} levels")
        if _has_lone_surrogate(text, value):
            at = _lone_surrogate_offset(text)
            where = f" at {_position(raw, len(text[:at].encode('utf-8')))}" if at is not None else ""
            raise _refuse(f"a string contains a lone UTF-16 surrogate escape{where}")
    return value
