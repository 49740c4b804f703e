"""HL7 v2 for the trust's EPR: acknowledgements of what it sent (ACK with MSA and ERR), and what the trust
received through the hub as RRI^I12 / REF^I12 / ADT^A03 / ACK, by the mapping tables in adapters/README.md."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from adapters.hl7 import text
from adapters.hl7.errors import ERROR_TEXT, Hl7RefusalError
from adapters.hl7.inbound import TRANSFER_TYPE
from service.terminology import NHS_NUMBER_SYSTEM

VERSION = "2.5"
OUTCOME_STATUS = {"accepted": "A", "declined": "R", "more-information-needed": "P"}  # RF1-1, table 0283
SEX = {"female": "F", "male": "M", "other": "O", "unknown": "U"}


def escape(value: object) -> str:
    """A value as HL7 v2 text: its separators escaped exactly once, line breaks as `\\.br\\` (adapters/hl7/text.py)."""
    return text.encode(value)


@dataclass(frozen=True)
class Reply:
    """Whom an ACK answers: this trust (`ods`), the EPR's MSH-3 and MSH-4, and the trigger acknowledged."""

    ods: str
    epr_application: str = ""
    epr_facility: str = ""
    trigger: str = ""


def ack(
    original_control_id: str, reply: Reply, *, code: str, text: str = "", refusal: Hl7RefusalError | None = None
) -> bytes:
    """The ACK for an EPR message: MSA-1 `code` (AA, AE, AR), and for a refusal an ERR naming the field."""
    segments = [
        _msh(
            reply.ods,
            reply.epr_application,
            reply.epr_facility,
            f"ACK^{escape(reply.trigger)}^ACK" if reply.trigger else "ACK",
        ),
        f"MSA|{code}|{escape(original_control_id)}|{escape(text)}",
    ]
    if refusal is not None:
        condition = f"{refusal.condition}^{escape(ERROR_TEXT[refusal.condition])}^HL70357"
        segments.append(f"ERR||{refusal.location}|{condition}|E||||{escape(refusal.text)}")
    return "\r".join(segments).encode("utf-8") + b"\r"


def for_epr(  # noqa: PLR0911 - one return per mapped event reads best
    bundle: Mapping[str, Any], ods: str, control_id_of: Mapping[str, str]
) -> bytes | None:
    """The HL7 v2 message for the EPR for a verified Handover message received by trust `ods`, or None when no
    HL7 message maps it (it then stays in the mailbox). `control_id_of` maps the MessageHeader ids of what this
    trust sent to the EPR's MSH-10, for ACKs of business acknowledgements."""
    resources = [entry["resource"] for entry in bundle["entry"]]
    header = resources[0]
    event = header["eventCoding"]["code"]
    sender = header.get("sender", {}).get("identifier", {}).get("value")
    if not sender:  # the hub's own messages (alerts, reports) have no sender and no HL7 mapping
        return None
    focus = _focus(resources, header)
    msh = _msh(ods, "EPR", ods, "", sender=sender)
    if event == "acknowledgement":
        answered = control_id_of.get(header.get("response", {}).get("identifier", ""))
        if answered is None:
            return None
        code = "AA" if header["response"].get("code") == "ok" else "AE"
        return _join(_typed(msh, "ACK^I12^ACK"), f"MSA|{code}|{escape(answered)}|business acknowledgement")
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    if event == "referral-outcome":
        status = OUTCOME_STATUS[focus["businessStatus"]["coding"][0]["code"]]
        referral = focus["basedOn"][0]["identifier"]["value"]
        notes = [n["text"] for n in focus.get("note", [])] + [focus.get("statusReason", {}).get("text", "")]
        rf1 = f"RF1|{status}||SMDT|||{escape(referral)}"
        return _join(_typed(msh, "RRI^I12^RRI_I12"), rf1, _pid(patient), *_ntes(notes))
    if event == "transfer-of-care-response":
        status = "A" if focus["status"] == "accepted" else "R"
        rf1 = f"RF1|{status}||{TRANSFER_TYPE}|||{escape(focus['identifier'][0]['value'])}"
        notes = [focus.get("statusReason", {}).get("text", "")]
        return _join(_typed(msh, "RRI^I12^RRI_I12"), rf1, _pid(patient), *_ntes(notes))
    if event in {"referral", "transfer-of-care"}:
        transfer = event == "transfer-of-care"
        own = focus["identifier"][0]["value"]
        rf1 = f"RF1|P||{TRANSFER_TYPE if transfer else ''}|||{escape(own)}"
        if transfer:
            rf1 += f"|||||{escape(focus['basedOn'][0]['identifier']['value'])}"
        notes = [n["text"] for n in focus.get("note", [])]
        return _join(_typed(msh, "REF^I12^REF_I12"), rf1, _pid(patient), *_ntes(notes))
    if event == "discharge-summary":
        encounter = next(r for r in resources if r["resourceType"] == "Encounter")
        referral = encounter["basedOn"][0]["identifier"]["value"]
        period = encounter["period"]
        pv1 = "PV1|1|I" + "|" * 42 + f"{_dt(period['start'])}|{_dt(period['end'])}" + "|" * 5 + escape(referral)
        obx = [
            f"OBX|{n}|TX|{escape(s.get('title', 'SECTION'))}||{escape(_plain(s['text']['div']))}||||||F"
            for n, s in enumerate((s for s in focus.get("section", []) if "text" in s), start=1)
        ]
        return _join(_typed(msh, "ADT^A03^ADT_A03"), "EVN|A03", _pid(patient), pv1, *obx)
    return None


def _msh(ods: str, to_application: str, to_facility: str, message_type: str, *, sender: str = "") -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    via = f"HANDOVER^{escape(sender)}" if sender else "HANDOVER"
    fields = [via, ods, escape(to_application), escape(to_facility), stamp, "", message_type, str(uuid.uuid4())]
    return "MSH|^~\\&|" + "|".join(fields) + f"|P|{VERSION}|||||||UNICODE UTF-8"


def _typed(msh: str, message_type: str) -> str:
    parts = msh.split("|")
    parts[8] = message_type
    return "|".join(parts)


def _pid(patient: Mapping[str, Any]) -> str:
    nhs = next(i["value"] for i in patient["identifier"] if i["system"] == NHS_NUMBER_SYSTEM)
    name = patient["name"][0]
    xpn = f"{escape(name['family'])}^{escape(' '.join(name.get('given', [])))}"
    born = patient.get("birthDate", "").replace("-", "")
    return f"PID|1||{escape(nhs)}^^^NHS^NH||{xpn}||{born}|{SEX.get(patient.get('gender', ''), 'U')}"


def _ntes(texts: list[str]) -> list[str]:
    return [f"NTE|{n}||{escape(t)}" for n, t in enumerate((t for t in texts if t), start=1)]


def _focus(resources: list[dict[str, Any]], header: Mapping[str, Any]) -> dict[str, Any]:
    focus = header.get("focus") or []
    if not focus:
        return {}
    wanted = focus[0]["reference"].removeprefix("urn:uuid:")
    return next((r for r in resources if r.get("id") == wanted), {})


def _dt(value: str) -> str:
    return value[:10].replace("-", "")


def _plain(div: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", div)).strip()


def _join(*segments: str) -> bytes:
    return "\r".join(segments).encode("utf-8") + b"\r"
