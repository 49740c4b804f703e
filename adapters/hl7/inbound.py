"""HL7 v2 from the trust's EPR → Handover message Bundles (unsigned), by the mapping tables in adapters/README.md.

`REF^I12` → `referral` (or, with RF1-3 `TOC`, `transfer-of-care`); `RRI^I12` answering a transfer of care →
`transfer-of-care-response`; `ADT^A03` with its discharge text in OBX → `discharge-summary`. Anything that cannot
be mapped raises Hl7RefusalError naming the segment and field; NHS numbers are checked (Modulus 11) here, before
anything is signed or sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, TypedDict

import hl7

from adapters import builders
from adapters.builders import Clinician, SyntheticPatient
from adapters.discharge import Stay, discharge_summary
from adapters.hl7 import segments, text
from adapters.hl7.errors import (
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE_ERROR,
    TABLE_VALUE_NOT_FOUND,
    UNSUPPORTED_MESSAGE_TYPE,
    Hl7RefusalError,
)
from service.terminology import is_nhs_number, is_ods_code

REFERRAL_NAMESPACE = uuid.UUID("6f1c3c52-4b8e-4f4e-9a53-2f0b8f6e7d10")  # local referral numbers → urn:uuid
SEXES = {"F": "female", "M": "male", "O": "other", "U": "unknown"}
TRANSFER_TYPE = "TOC"  # RF1-3 (user-defined table 0281): a transfer of care rather than a new referral


@dataclass(frozen=True)
class Parsed:
    """An EPR message after the envelope checks: its control ID, type and trigger, and the parsed message."""

    control_id: str
    message_type: str
    trigger: str
    sending_facility: str
    receiving_facility: str
    message: hl7.Message


@dataclass(frozen=True)
class Trusts:
    """Who is who for the mapping: this trust (the connector's `--as`) and the names of the other participants."""

    ods: str
    names: Mapping[str, str]
    event_system: str
    request_for: Callable[[str], dict[str, Any] | None]  # a received transfer-of-care Bundle by its Task identifier


def parse(raw: bytes) -> Parsed:
    """The EPR's bytes as an HL7 message, after checking separators, MSH and the segments every mapping needs."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Hl7RefusalError("MSH^1^18", DATA_TYPE_ERROR, "the message is not UTF-8 (MSH-18 UNICODE UTF-8)") from None
    if not text.startswith("MSH|^~\\&"):
        raise Hl7RefusalError("MSH^1^1", DATA_TYPE_ERROR, "MSH must open the message with the separators |^~\\&")
    if "\n" in text.rstrip("\r\n"):
        raise Hl7RefusalError("MSH^1^1", SEGMENT_SEQUENCE_ERROR, "segments must be separated by <CR>, not line feeds")
    try:
        message = hl7.parse(text.strip("\r\n"))
    except Exception as exc:  # noqa: BLE001 - python-hl7 raises several types for unparseable input
        raise Hl7RefusalError("MSH^1", DATA_TYPE_ERROR, f"unparseable HL7 v2: {type(exc).__name__}") from None
    control_id = field(message, "MSH", 10)
    message_type, trigger = field(message, "MSH", 9, component=1), field(message, "MSH", 9, component=2)
    for value, location in ((control_id, "MSH^1^10"), (message_type, "MSH^1^9^1"), (trigger, "MSH^1^9^2")):
        if not value:
            raise Hl7RefusalError(location, REQUIRED_FIELD_MISSING, "the message header is incomplete")
    return Parsed(
        control_id, message_type, trigger, field(message, "MSH", 4), field(message, "MSH", 6, component=1), message
    )


def to_bundle(parsed: Parsed, trusts: Trusts) -> dict[str, Any]:
    """The unsigned Handover Bundle for an EPR message, or Hl7RefusalError."""
    if parsed.sending_facility != trusts.ods:
        raise Hl7RefusalError("MSH^1^4", TABLE_VALUE_NOT_FOUND, f"MSH-4 must be this connector's trust {trusts.ods}")
    receiver = parsed.receiving_facility
    if not is_ods_code(receiver) or receiver not in trusts.names:
        raise Hl7RefusalError("MSH^1^6", TABLE_VALUE_NOT_FOUND, "MSH-6 must be the ODS code of a network participant")
    kind = (parsed.message_type, parsed.trigger)
    if kind == ("REF", "I12"):
        return _referral_or_transfer(parsed.message, trusts, receiver)
    if kind == ("RRI", "I12"):
        return _transfer_response(parsed.message, trusts)
    if kind == ("ADT", "A03"):
        return _discharge(parsed.message, trusts, receiver)
    raise Hl7RefusalError("MSH^1^9", UNSUPPORTED_MESSAGE_TYPE, "only REF^I12, RRI^I12 and ADT^A03 are mapped")


def field(message: hl7.Message, segment: str, number: int, *, repeat: int = 1, component: int = 1) -> str:
    """One decoded component of one field of the first `segment` ('' when absent or short)."""
    found = segments.of(message, segment)
    return segments.value(found[0], number, repeat=repeat, component=component) if found else ""


def salvage(raw: bytes) -> tuple[str, str, str, str]:
    """MSH-10, MSH-3, MSH-4 and MSH-9.2 read from a message `parse` refused, as far as they can be read (for the
    AR that answers it: an EPR matches answers by MSA-2)."""
    first = raw.decode("utf-8", errors="replace").replace("\r\n", "\r").replace("\n", "\r").split("\r", 1)[0]
    if not first.startswith("MSH") or len(first) < 8:
        return "", "", "", ""
    encoding = text.Encoding.of(first)
    fields = ["MSH", encoding.field, *first[4:].split(encoding.field)]  # fields[n] is MSH-n

    def at(number: int, component: int = 1) -> str:
        raw_field = fields[number] if number < len(fields) else ""
        return text.part(raw_field, 1, component, 1, encoding)[:199]

    return at(10), at(3), at(4), at(9, 2)


def referral_identifier(value: str, facility: str) -> str:
    """RF1-6 as the Handover referral identifier: a urn:uuid as is, a local number as a name-based urn:uuid."""
    if value.startswith("urn:uuid:"):
        return value
    return f"urn:uuid:{uuid.uuid5(REFERRAL_NAMESPACE, f'{facility}|{value}')}"


def patient_of(message: hl7.Message) -> SyntheticPatient:
    if not _has(message, "PID"):
        raise Hl7RefusalError("PID", SEGMENT_SEQUENCE_ERROR, "the PID segment is missing")
    nhs_number = segments.nhs_number(message)
    if not nhs_number:
        raise Hl7RefusalError(
            "PID^1^3", REQUIRED_FIELD_MISSING, "no PID-3 repetition with an NHS number (NH, HN or NHSNMBR under NHS)"
        )
    if not is_nhs_number(nhs_number):
        raise Hl7RefusalError("PID^1^3^1", DATA_TYPE_ERROR, "the NHS number fails its Modulus 11 check", "AE")
    family, given = field(message, "PID", 5, component=1), field(message, "PID", 5, component=2)
    if not family:
        raise Hl7RefusalError("PID^1^5^1", REQUIRED_FIELD_MISSING, "the patient's family name is missing")
    sex = SEXES.get(field(message, "PID", 8))
    if sex is None:
        raise Hl7RefusalError("PID^1^8", TABLE_VALUE_NOT_FOUND, "PID-8 must be F, M, O or U (table 0001)")
    return SyntheticPatient(nhs_number, family, given, _date(field(message, "PID", 7), "PID^1^7").isoformat(), sex)


def _referral_or_transfer(message: hl7.Message, trusts: Trusts, receiver: str) -> dict[str, Any]:
    _require(message, "RF1")
    patient = patient_of(message)
    referrer = segments.required_provider(message, "RP")
    local_number = field(message, "RF1", 6)
    if not local_number:
        raise Hl7RefusalError("RF1^1^6", REQUIRED_FIELD_MISSING, "RF1-6 (originating referral identifier) is missing")
    identifier = referral_identifier(local_number, field(message, "RF1", 6, component=2) or trusts.ods)
    if field(message, "RF1", 3) == TRANSFER_TYPE:
        return builders.transfer_of_care(
            trusts.event_system,
            **_parties(trusts, receiver),
            patient=patient,
            from_clinician=referrer,
            to_clinician=segments.required_provider(message, "RT"),
            referral_identifier=identifier,
            note=segments.notes(message) or None,
        )
    effective = field(message, "RF1", 7)
    if effective:
        _date(effective, "RF1^1^7")  # still checked; not sent: see adapters/README.md (issue 24)
    key_worker = segments.provider(message, "KW")  # optional, as the referral profile makes it (0..1)
    notes, diagnosis = segments.notes(message), segments.diagnosis(message)
    bundle = builders.referral(
        trusts.event_system,
        **_parties(trusts, receiver),
        patient=patient,
        referrer=referrer,
        key_worker=key_worker or referrer,  # a stand-in, taken out below when the EPR names no key worker
    )
    request = _resource(bundle, "ServiceRequest")
    request["identifier"][0]["value"] = identifier
    if key_worker is None:
        _drop_key_worker(bundle, request)
    request.pop("note", None)  # the builder's example note: only what the EPR wrote goes to the centre
    if notes:
        request["note"] = [{"text": notes}]
    _set_diagnosis(bundle, diagnosis)
    return bundle


def _transfer_response(message: hl7.Message, trusts: Trusts) -> dict[str, Any]:
    _require(message, "RF1")
    if field(message, "RF1", 3) != TRANSFER_TYPE:
        raise Hl7RefusalError("RF1^1^3", TABLE_VALUE_NOT_FOUND, "an RRI^I12 from the EPR must answer a transfer (TOC)")
    status = field(message, "RF1", 1)
    if status not in {"A", "R"}:
        raise Hl7RefusalError("RF1^1^1", TABLE_VALUE_NOT_FOUND, "RF1-1 must be A (accepted) or R (rejected)")
    task_identifier = field(message, "RF1", 6)
    request = trusts.request_for(task_identifier)
    if request is None:
        raise Hl7RefusalError("RF1^1^6", TABLE_VALUE_NOT_FOUND, "RF1-6 names no transfer of care received here", "AE")
    reason = segments.notes(message) or None
    if status == "R" and reason is None:
        raise Hl7RefusalError("NTE^1^3", REQUIRED_FIELD_MISSING, "a rejected transfer needs its reason in NTE-3")
    return builders.transfer_of_care_response(
        trusts.event_system, trusts.ods, trusts.names[trusts.ods], request, accepted=status == "A", reason=reason
    )


def _discharge(message: hl7.Message, trusts: Trusts, receiver: str) -> dict[str, Any]:
    _require(message, "PV1")
    patient = patient_of(message)
    texts = segments.observations(message)
    summary = " ".join(texts.get("SUMMARY", []))
    if not summary:
        raise Hl7RefusalError(
            "OBX^1^5", REQUIRED_FIELD_MISSING, "no OBX with OBX-3 SUMMARY (the discharge summary text)"
        )
    referral = field(message, "PV1", 50)
    if not referral:
        raise Hl7RefusalError("PV1^1^50", REQUIRED_FIELD_MISSING, "PV1-50 must carry the referral identifier")
    author = Clinician(
        field(message, "PV1", 7, component=2), field(message, "PV1", 7, component=3), field(message, "PV1", 7)
    )
    if not author.family or not author.gmc:
        raise Hl7RefusalError(
            "PV1^1^7", REQUIRED_FIELD_MISSING, "PV1-7 (attending doctor: GMC^family^given) is missing"
        )
    stay = Stay(
        admitted=_date(field(message, "PV1", 44), "PV1^1^44"),
        discharged=_date(field(message, "PV1", 45), "PV1^1^45"),
        summary=summary,
        plan=" ".join(texts.get("PLAN", [])) or "No further plan recorded.",
        medications=tuple(texts.get("MEDICATION", [])),
    )
    if (diagnosis := segments.diagnosis(message)) is not None:  # the Diagnoses section's text says the same
        stay = replace(stay, diagnosis=(diagnosis.code, diagnosis.display or diagnosis.code))
    bundle = discharge_summary(
        trusts.event_system,
        **_parties(trusts, receiver),
        patient=patient,
        author=author,
        referral_identifier=referral_identifier(referral, field(message, "PV1", 50, component=4) or trusts.ods),
        stay=stay,
    )
    _set_diagnosis(bundle, diagnosis)
    return bundle


class _Parties(TypedDict):
    sender_ods: str
    sender_name: str
    receiver_ods: str
    receiver_name: str


def _parties(trusts: Trusts, receiver: str) -> _Parties:
    """The builders' sender and receiver arguments: this trust to `receiver`."""
    return _Parties(
        sender_ods=trusts.ods,
        sender_name=trusts.names[trusts.ods],
        receiver_ods=receiver,
        receiver_name=trusts.names[receiver],
    )


def _resource(bundle: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind)


def _drop_key_worker(bundle: dict[str, Any], request: dict[str, Any]) -> None:
    """Take the key worker extension, and the PractitionerRole and Practitioner only it named, out of a referral."""
    extension = next(e for e in request["extension"] if e["url"] == builders.KEY_WORKER_URL)
    request["extension"].remove(extension)
    if not request["extension"]:
        del request["extension"]
    role_id = extension["valueReference"]["reference"].removeprefix("urn:uuid:")
    role = next(e["resource"] for e in bundle["entry"] if e["resource"].get("id") == role_id)
    person_id = role["practitioner"]["reference"].removeprefix("urn:uuid:")  # the stand-in's own Practitioner
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"].get("id") not in {role_id, person_id}]


def _set_diagnosis(bundle: dict[str, Any], diagnosis: segments.Diagnosis | None) -> None:
    """The Condition coded from DG1-3; without a DG1 the builders' default (liver metastases, the pathway this
    network runs) stays, as adapters/README.md says."""
    if diagnosis is not None:
        _resource(bundle, "Condition")["code"] = diagnosis.concept()


def _has(message: hl7.Message, segment: str) -> bool:
    return any(str(s[0]) == segment for s in message)


def _require(message: hl7.Message, segment: str) -> None:
    if not _has(message, segment):
        raise Hl7RefusalError(segment, SEGMENT_SEQUENCE_ERROR, f"the {segment} segment is missing")


def _date(value: str, location: str) -> date:
    try:
        return datetime.strptime(value[:8], "%Y%m%d").date()
    except ValueError:
        raise Hl7RefusalError(location, DATA_TYPE_ERROR, "not an HL7 date (YYYYMMDD)") from None
