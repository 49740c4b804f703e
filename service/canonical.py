"""RFC 8785 (JCS) canonical JSON, fast: msgspec's JSON encoder where its output is provably the same bytes, and the
`rfc8785` package (the reference, pure Python) for everything else.

For a document made only of dicts with string keys, lists, strings, booleans, None and integers within
±(2^53-1), JCS and `msgspec.json.Encoder(order="sorted")` agree byte for byte: both write UTF-8 and escape
exactly `"`, `\\` and the controls U+0000-U+001F (`\\b \\t \\n \\f \\r` short, the rest as lower-case
`\\u00xx`), both write integers in plain decimal, and both sort keys, code point (UTF-8 byte) order and UTF-16
order being the same unless a key holds a character beyond U+FFFF. So a single walk over the value decides:
floats (ECMAScript number formatting), integers beyond the safe range (refused), keys beyond the BMP, any
other type or subclass, and strings that are not valid UTF-8 (lone surrogates: msgspec raises
UnicodeEncodeError) all go to `rfc8785`, which produces the canonical form or raises its
CanonicalizationError. msgspec (rather than the standard library's C encoder, which gives the same bytes) because
it is an order of magnitude faster: the canonical form of every inbound message is on the intake's path.
tests/test_canonical.py checks the agreement on a large generated corpus.
"""

from __future__ import annotations

from typing import Any

import msgspec
import rfc8785

from service.strictjson import MAX_SAFE_INTEGER

CanonicalizationError = rfc8785.CanonicalizationError
_ENCODER = msgspec.json.Encoder(order="sorted")


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 bytes of `value`; raises CanonicalizationError for what JCS cannot represent."""
    return canonical_json_of_plain(value) if _plain(value) else bytes(rfc8785.dumps(value))


def canonical_json_of_plain(value: Any) -> bytes:
    """`canonical_json` of a value its caller built itself and knows to be plain: only dicts whose keys are
    ASCII `str`, lists, `str`, `bool`, None and `int` within ±(2^53-1), all of exactly those types. The walk
    that proves it is skipped (the hub's receipt, rebuilt per message from its own strings); a lone surrogate
    still goes to `rfc8785`. Given anything else, the bytes may differ from RFC 8785: use `canonical_json`."""
    try:
        return _ENCODER.encode(value)
    except UnicodeEncodeError:  # a lone surrogate: let the reference decide how to refuse it
        return bytes(rfc8785.dumps(value))


def _plain(value: Any) -> bool:
    """True when the C encoder's output is the JCS output (see the module docstring)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is int:
            if -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                continue
            return False
        if kind is dict:
            for key in item:
                if type(key) is not str or (not key.isascii() and max(key) > "\uffff"):
                    return False
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        else:  # float, tuple, subclasses, anything else
            return False
    return True
