"""Build Handover message Bundles as a trust's EPR would, from synthetic data only.

Every builder's output conforms to the profiles in fhir_profiles/ (tests/validation proves it). NHS numbers come
from the 999 test range; names are invented. Nothing here is real patient data.
"""

from __future__ import annotations

import copy
import html
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from adapters.cwt_items import IptDataSet, add_decision_to_treat, add_ipt_data_set
from service.terminology import NHS_NUMBER_SYSTEM, ODS_SYSTEM, RFC3986_SYSTEM, nhs_number_check_digit

SNOMED = "http://snomed.info/sct"
GMC_SYSTEM = "https://fhir.hl7.org.uk/Id/gmc-number"
HANDOVER = "https://handover.nhs.example/fhir"
KEY_WORKER_URL = f"{HANDOVER}/StructureDefinition/key-worker"
PATHWAY_START_URL = f"{HANDOVER}/StructureDefinition/cancer-pathway-start-date"
SMDT_OUTCOME_SYSTEM = f"{HANDOVER}/CodeSystem/handover-smdt-outcome"
TRANSFER_OF_CARE = {"coding": [{"system": SNOMED, "code": "308292007", "display": "Transfer of care"}]}
LIVER_METASTASES = ("94381002", "Secondary malignant neoplasm of liver")
SMDT_DECISIONS = {"accepted": "Accepted", "declined": "Declined", "more-information-needed": "More information needed"}


def synthetic_nhs_number(seed: int) -> str:
    """A Modulus-11-valid NHS number in the 999 test range, different for each seed."""
    while True:
        base = f"999{seed % 10**6:06d}"
        check = nhs_number_check_digit(base)
        if check is not None:
            return base + str(check)
        seed += 1


@dataclass(frozen=True)
class Clinician:
    family: str
    given: str
    gmc: str


@dataclass(frozen=True)
class SyntheticPatient:
    nhs_number: str
    family: str
    given: str
    birth_date: str
    gender: str


def new_id() -> str:
    return str(uuid.uuid4())


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    return {"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource}


def reference_to(resource: dict[str, Any]) -> dict[str, str]:
    return {"reference": f"urn:uuid:{resource['id']}"}


def instant(timestamp: datetime | None) -> str:
    return (timestamp or datetime.now(UTC)).isoformat(timespec="seconds").replace("+00:00", "Z")


def referral_reference(referral_identifier: str) -> dict[str, Any]:
    """A logical reference to the referral (ServiceRequest) by its business identifier."""
    return {"type": "ServiceRequest", "identifier": {"system": RFC3986_SYSTEM, "value": referral_identifier}}


def organization(ods: str, name: str) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": new_id(),
        "identifier": [{"system": ODS_SYSTEM, "value": ods}],
        "name": name,
    }


def patient_resource(patient: SyntheticPatient) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": new_id(),
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": patient.nhs_number}],
        "name": [{"use": "official", "family": patient.family, "given": [patient.given]}],
        "gender": patient.gender,
        "birthDate": patient.birth_date,
    }


def practitioner(clinician: Clinician) -> dict[str, Any]:
    return {
        "resourceType": "Practitioner",
        "id": new_id(),
        "identifier": [{"system": GMC_SYSTEM, "value": clinician.gmc}],
        "name": [{"family": clinician.family, "given": [clinician.given]}],
    }


def named_clinician(clinician: Clinician, org: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The PractitionerRole (clinician at `org`) and its Practitioner."""
    person = practitioner(clinician)
    role = {
        "resourceType": "PractitionerRole",
        "id": new_id(),
        "practitioner": reference_to(person),
        "organization": reference_to(org),
    }
    return role, person


def message_header(
    event_system: str,
    event: str,
    *,
    sender: dict[str, Any],
    receiver_ods: str,
    focus: list[dict[str, Any]],
    response: dict[str, Any] | None = None,
) -> dict[str, Any]:
    sender_ods = sender["identifier"][0]["value"]
    header: dict[str, Any] = {
        "resourceType": "MessageHeader",
        "id": new_id(),
        "eventCoding": {"system": event_system, "code": event},
        "destination": [
            {
                "endpoint": f"urn:ods:{receiver_ods}",
                "receiver": {"identifier": {"system": ODS_SYSTEM, "value": receiver_ods}},
            }
        ],
        "sender": {"reference": f"urn:uuid:{sender['id']}", "identifier": {"system": ODS_SYSTEM, "value": sender_ods}},
        "source": {"endpoint": f"urn:ods:{sender_ods}", "software": "Handover trust client"},
        "focus": [reference_to(resource) for resource in focus],
    }
    if response is not None:
        header["response"] = response
    return header


def message_bundle(entries: list[dict[str, Any]], timestamp: datetime | None = None) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "id": new_id(),
        "type": "message",
        "identifier": {"system": RFC3986_SYSTEM, "value": _urn()},
        "timestamp": instant(timestamp),
        "entry": [_entry(resource) for resource in entries],
    }


def referral(
    event_system: str,
    *,
    sender_ods: str,
    sender_name: str,
    receiver_ods: str,
    receiver_name: str,
    patient: SyntheticPatient,
    referrer: Clinician,
    key_worker: Clinician,
    timestamp: datetime | None = None,
    pathway_start: date | None = None,
    ipt: IptDataSet | None = None,
) -> dict[str, Any]:
    """A `referral` message: local MDT → centre SMDT, focus ServiceRequest, with patient, condition and team.

    `pathway_start`, when given, is the cancer pathway start date (extension cancer-pathway-start-date): a cancer
    pathway referral, which must also carry `ipt`, the Inter-Provider Transfer data set (fhir_profiles/README.md)."""
    pat = patient_resource(patient)
    sender, receiver = organization(sender_ods, sender_name), organization(receiver_ods, receiver_name)
    role, doctor = named_clinician(referrer, sender)
    worker_role, worker = named_clinician(key_worker, sender)
    condition = {
        "resourceType": "Condition",
        "id": new_id(),
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
        },
        "verificationStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]
        },
        "code": {"coding": [{"system": SNOMED, "code": LIVER_METASTASES[0], "display": LIVER_METASTASES[1]}]},
        "subject": reference_to(pat),
    }
    extensions: list[dict[str, Any]] = [{"url": KEY_WORKER_URL, "valueReference": reference_to(worker_role)}]
    if pathway_start is not None:
        extensions.append({"url": PATHWAY_START_URL, "valueDate": pathway_start.isoformat()})
    request = {
        "resourceType": "ServiceRequest",
        "id": new_id(),
        "extension": extensions,
        "status": "active",
        "intent": "order",
        "identifier": [{"system": RFC3986_SYSTEM, "value": _urn()}],
        "code": {"coding": [{"system": SNOMED, "code": "3457005", "display": "Patient referral"}]},
        "subject": reference_to(pat),
        "requester": reference_to(role),
        "performer": [reference_to(receiver)],
        "reasonReference": [reference_to(condition)],
        "authoredOn": instant(timestamp),
        "note": [{"text": "Local MDT: colorectal liver metastases, for SMDT opinion on resection."}],
    }
    if ipt is not None:
        add_ipt_data_set(request, pat, sender_ods, ipt)
    header = message_header(event_system, "referral", sender=sender, receiver_ods=receiver_ods, focus=[request])
    entries = [header, request, pat, condition, role, doctor, worker_role, worker, sender, receiver]
    return message_bundle(entries, timestamp)


def referral_outcome(
    event_system: str,
    sender_ods: str,
    sender_name: str,
    referral_message: dict[str, Any],
    *,
    decision: str,
    plan: str,
    decided_by: Clinician,
    reason: str | None = None,
    timestamp: datetime | None = None,
    decision_to_treat: date | None = None,
) -> dict[str, Any]:
    """The SMDT's `referral-outcome` (accepted | declined | more-information-needed) for a referral message, back
    to its sender. `reason` is required unless the decision is accepted; an accepted outcome on a cancer pathway
    carries the `decision_to_treat` date."""
    request_header, request, pat = _first(referral_message, "MessageHeader", "ServiceRequest", "Patient")
    receiver_ods = request_header["sender"]["identifier"]["value"]
    sender = organization(sender_ods, sender_name)
    role, person = named_clinician(decided_by, sender)
    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": new_id(),
        "identifier": [{"system": RFC3986_SYSTEM, "value": _urn()}],
        "basedOn": [referral_reference(request["identifier"][0]["value"])],
        "status": "completed",
        "businessStatus": {
            "coding": [{"system": SMDT_OUTCOME_SYSTEM, "code": decision, "display": SMDT_DECISIONS[decision]}]
        },
        "intent": "order",
        "for": reference_to(pat),
        "authoredOn": instant(timestamp),
        "owner": reference_to(role),
        "note": [{"text": plan}],
    }
    if reason is not None:
        task["statusReason"] = {"text": reason}
    if decision_to_treat is not None:
        add_decision_to_treat(task, decision_to_treat)
    header = message_header(
        event_system,
        "referral-outcome",
        sender=sender,
        receiver_ods=receiver_ods,
        focus=[task],
        response={"identifier": request_header["id"], "code": "ok"},
    )
    return message_bundle([header, task, copy.deepcopy(pat), role, person, sender], timestamp)


def transfer_of_care(
    event_system: str,
    *,
    sender_ods: str,
    sender_name: str,
    receiver_ods: str,
    receiver_name: str,
    patient: SyntheticPatient,
    from_clinician: Clinician,
    to_clinician: Clinician,
    referral_identifier: str,
    timestamp: datetime | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """A `transfer-of-care` request: responsibility for `patient` to move from `from_clinician` at the sender to
    `to_clinician` at the receiver (Task requester → owner), following the referral `referral_identifier`."""
    pat = patient_resource(patient)
    sender, receiver = organization(sender_ods, sender_name), organization(receiver_ods, receiver_name)
    from_role, from_person = named_clinician(from_clinician, sender)
    to_role, to_person = named_clinician(to_clinician, receiver)
    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": new_id(),
        "identifier": [{"system": RFC3986_SYSTEM, "value": _urn()}],
        "basedOn": [referral_reference(referral_identifier)],
        "status": "requested",
        "intent": "order",
        "code": copy.deepcopy(TRANSFER_OF_CARE),
        "for": reference_to(pat),
        "authoredOn": instant(timestamp),
        "requester": reference_to(from_role),
        "owner": reference_to(to_role),
    }
    if note is not None:
        task["note"] = [{"text": note}]
    header = message_header(event_system, "transfer-of-care", sender=sender, receiver_ods=receiver_ods, focus=[task])
    entries = [header, task, pat, from_role, from_person, to_role, to_person, sender, receiver]
    return message_bundle(entries, timestamp)


def transfer_of_care_response(
    event_system: str,
    sender_ods: str,
    sender_name: str,
    request: dict[str, Any],
    *,
    accepted: bool,
    reason: str | None = None,
    timestamp: datetime | None = None,
) -> dict[str, Any]:
    """The named receiving clinician's `transfer-of-care-response` to a transfer-of-care message: the same Task
    (same identifier) now accepted or rejected (a rejection needs `reason`), back to the request's sender."""
    request_header = request["entry"][0]["resource"]
    receiver_ods = request_header["sender"]["identifier"]["value"]
    resources = [copy.deepcopy(entry["resource"]) for entry in request["entry"][1:]]
    task = next(resource for resource in resources if resource["resourceType"] == "Task")
    task["status"] = "accepted" if accepted else "rejected"
    task["lastModified"] = instant(timestamp)
    if reason is not None:
        task["statusReason"] = {"text": reason}
    sender = next((r for r in resources if r["resourceType"] == "Organization" and _ods(r) == sender_ods), None)
    if sender is None:
        sender = organization(sender_ods, sender_name)
        resources.append(sender)
    header = message_header(
        event_system,
        "transfer-of-care-response",
        sender=sender,
        receiver_ods=receiver_ods,
        focus=[task],
        response={"identifier": request_header["id"], "code": "ok"},
    )
    return message_bundle([header, *resources], timestamp)


def acknowledgement(
    event_system: str,
    sender_ods: str,
    sender_name: str,
    request: dict[str, Any],
    *,
    code: str = "ok",
    timestamp: datetime | None = None,
) -> dict[str, Any]:
    """A business `acknowledgement` of `request` (a message Bundle), back to its sender."""
    request_header = request["entry"][0]["resource"]
    receiver_ods = request_header["sender"]["identifier"]["value"]
    sender = organization(sender_ods, sender_name)
    header = message_header(
        event_system,
        "acknowledgement",
        sender=sender,
        receiver_ods=receiver_ods,
        focus=[],
        response={"identifier": request_header["id"], "code": code},
    )
    header.pop("focus")
    return message_bundle([header, sender], timestamp)


def narrative(*paragraphs: str) -> dict[str, str]:
    """A generated XHTML narrative (Resource.text / Composition.section.text) of plain paragraphs."""
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{body}</div>'}


def _first(bundle: dict[str, Any], *kinds: str) -> list[dict[str, Any]]:
    return [next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind) for kind in kinds]


def _ods(org: dict[str, Any]) -> str | None:
    return next((i.get("value") for i in org.get("identifier", []) if i.get("system") == ODS_SYSTEM), None)
