"""What the EPR answered to a message the connector handed it, read as liberally as HL7 allows and no more.

Accepted: any answer with an MSA whose MSA-1 is `AA` or `CA` and whose MSA-2 is the control ID sent, whatever
MSH-9 says (`ACK` alone as HL7 2.1-2.3 send it, `ACK^R01`, `ACK^I12^ACK`, or the event's own application
response such as `RRI^I12`), whatever the version, separators as MSH declares them, segments ended by CR, LF or
CRLF. Refused: MSA-1 `AE`, `AR`, `CE` or `CR`. Anything else is unreadable, and says which field was wrong.
Nothing here holds patient data: only codes and field names are returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from adapters.hl7 import text

ACCEPTED, REFUSED, UNREADABLE, OTHER_MESSAGE = "accepted", "refused", "unreadable", "other-message"
ACCEPT_CODES = {"AA", "CA"}
REFUSE_CODES = {"AE", "AR", "CE", "CR"}
_SAFE = re.compile(r"[^A-Za-z0-9^.\- ]")


@dataclass(frozen=True)
class Answer:
    """`outcome` (accepted, refused, unreadable, other-message), MSA-1 as read, and for anything but accepted the
    field that decided it (e.g. `MSA-2`, `MSH-1`), with the EPR's ERR location when it gave one."""

    outcome: str
    code: str = ""
    problem: str = ""

    @property
    def delivered(self) -> bool:
        return self.outcome == ACCEPTED


def read(raw: bytes, control_id: str) -> Answer:  # noqa: PLR0911 - one return per outcome reads best
    """The EPR's answer `raw` to the message whose MSH-10 was `control_id`."""
    body = raw.decode("utf-8", errors="replace").replace("\r\n", "\r").replace("\n", "\r").strip("\r \t\x00")
    lines = [line for line in body.split("\r") if line.strip()]
    if not lines or not lines[0].startswith("MSH") or len(lines[0]) < 8:
        return Answer(UNREADABLE, problem="MSH-1/MSH-2 (the answer does not start with MSH and its separators)")
    encoding = text.Encoding.of(lines[0])
    if encoding.field.isalnum() or len(set(_separators(encoding))) < 5:
        return Answer(UNREADABLE, problem="MSH-2 (the encoding characters are not five distinct separators)")
    msa = next((line.split(encoding.field) for line in lines if line.startswith(f"MSA{encoding.field}")), None)
    if msa is None:
        return Answer(UNREADABLE, problem="MSA (the answer has no MSA segment)")
    code = text.part(msa[1] if len(msa) > 1 else "", encoding=encoding).strip().upper()
    answered = text.part(msa[2] if len(msa) > 2 else "", encoding=encoding).strip()
    if code in REFUSE_CODES:
        return Answer(REFUSED, code, f"MSA-1 {code}{_err_location(lines, encoding)}")
    if code not in ACCEPT_CODES:
        shown = _SAFE.sub("", code)[:8] or "empty"
        return Answer(UNREADABLE, code, f"MSA-1 ({shown}: not an acknowledgement code of table 0008)")
    if answered != control_id:
        problem = "MSA-2 (empty)" if not answered else "MSA-2 (answers another message's control ID)"
        return Answer(OTHER_MESSAGE, code, problem)
    return Answer(ACCEPTED, code)


def _separators(encoding: text.Encoding) -> tuple[str, ...]:
    return (encoding.field, encoding.component, encoding.repetition, encoding.escape, encoding.subcomponent)


def _err_location(lines: list[str], encoding: text.Encoding) -> str:
    """`, ERR PID^1^3` from the first ERR (ERR-2 in v2.5+, ERR-1 before), reduced to a field location."""
    err = next((line.split(encoding.field) for line in lines if line.startswith(f"ERR{encoding.field}")), None)
    if err is None:
        return ""
    raw = next((err[n] for n in (2, 1) if len(err) > n and err[n]), "")
    location = _SAFE.sub("", raw.replace(encoding.component, "^"))[:40]
    return f", ERR {location}" if location else ""
