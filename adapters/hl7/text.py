"""HL7 v2 values as text: a field's raw characters split by the message's own separators (repetition, component,
subcomponent) and its escape sequences decoded on the way in; text escaped exactly once on the way out.

Decoding (v2.5 chapter 2.7): `\\F\\ \\S\\ \\T\\ \\R\\ \\E\\` the separators, `\\.br\\` and `\\.sp\\` a line break,
`\\Xhh..\\` bytes in the message's character set (UTF-8 here), `\\H\\ \\N\\` (highlighting), `\\.fi\\ \\.nf\\` and
`\\Z..\\` (local) dropped, an unknown or unterminated sequence kept as it was. python-hl7's own `unescape` is not
used: it logs the whole field (patient text) on a sequence it does not know and reads `\\X..\\` byte by byte as
Latin-1, so UTF-8 text sent as hex arrives garbled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SEQUENCE = re.compile(r"\\([^\\]{1,64})\\")


@dataclass(frozen=True)
class Encoding:
    """The message's separators, from MSH-1 and MSH-2 (the v2 defaults when MSH-2 is short)."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @classmethod
    def of(cls, text: str) -> Encoding:
        """The encoding a message declares after `MSH` (defaults for what it leaves out)."""
        if len(text) < 4:
            return cls()
        field = text[3]
        chars = text[4:].split(field, 1)[0]
        defaults = "^~\\&"
        component, repetition, escape, subcomponent = (chars[i] if i < len(chars) else defaults[i] for i in range(4))
        return cls(field, component, repetition, escape, subcomponent)


DEFAULT = Encoding()


def split(raw: str, encoding: Encoding = DEFAULT) -> list[list[list[str]]]:
    """A field's raw text as repetitions → components → subcomponents (still escaped)."""
    return [
        [component.split(encoding.subcomponent) for component in repetition.split(encoding.component)]
        for repetition in raw.split(encoding.repetition)
    ]


def part(raw: str, repeat: int = 1, component: int = 1, subcomponent: int = 1, encoding: Encoding = DEFAULT) -> str:
    """One decoded subcomponent of a field's raw text, by 1-based positions ('' when absent)."""
    tree = split(raw, encoding)
    try:
        value = tree[repeat - 1][component - 1][subcomponent - 1]
    except IndexError:
        return ""
    return decode(value, encoding)


def decode(value: str, encoding: Encoding = DEFAULT) -> str:
    """`value` with its escape sequences replaced by what they stand for."""
    if encoding.escape not in value:
        return value
    escape = re.escape(encoding.escape)
    pattern = _SEQUENCE if encoding.escape == "\\" else re.compile(rf"{escape}([^{escape}]{{1,64}}){escape}")
    return pattern.sub(lambda match: _meaning(match.group(1), match.group(0), encoding), value)


def _meaning(sequence: str, whole: str, encoding: Encoding) -> str:
    separators = {
        "F": encoding.field,
        "S": encoding.component,
        "T": encoding.subcomponent,
        "R": encoding.repetition,
        "E": encoding.escape,
    }
    if sequence in separators:
        return separators[sequence]
    if sequence in {".br", ".sp"} or re.fullmatch(r"\.sp\d*", sequence):
        return "\n"
    if sequence in {"H", "N", ".fi", ".nf"} or sequence.startswith(("Z", ".in", ".ti", ".ce", ".sk")):
        return ""
    if sequence[0] == "X" and re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", sequence[1:]):
        return bytes.fromhex(sequence[1:]).decode("utf-8", errors="replace")
    return whole


_OUT = {"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "~": "\\R\\", "&": "\\T\\"}


def encode(value: object) -> str:
    """Text as an HL7 v2 value (default separators): each separator escaped once, a line break as `\\.br\\`,
    other control characters as `\\Xhh\\`."""
    text = str(value).replace("\r\n", "\n").replace("\r", "\n")
    out = []
    for ch in text:
        if ch in _OUT:
            out.append(_OUT[ch])
        elif ch == "\n":
            out.append("\\.br\\")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\X{ord(ch):02X}\\")
        else:
            out.append(ch)
    return "".join(out)
