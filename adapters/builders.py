"""Build Handover message Bundles as a trust's EPR would, from synthetic data only.

NHS numbers come from the 999 test range; names are invented. Nothing here is real patient data.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from service.terminology import NHS_NUMBER_SYSTEM, ODS_SYSTEM, RFC3986_SYSTEM

SNOMED = "http://snomed.info/sct"
GMC_SYSTEM = "https://fhir.hl7.org.uk/Id/gmc-number"


def synthetic_nhs_number(seed: int) -> str:
    """A Modulus-11-valid NHS number in the 999 test range, different for each seed."""
    while True:
        base = f"999{seed % 10**6:06d}"
        total = sum(int(d) * w for d, w in zip(base, range(10, 1, -1), strict=True))
        check = (11 - total % 11) % 11
        if check != 10:
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


def _uid() -> str:
    return str(uuid.uuid4())


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    return {"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource}


def organization(ods: str, name: str) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": _uid(),
        "identifier": [{"system": ODS_SYSTEM, "value": ods}],
        "name": name,
    }


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
        "id": _uid(),
        "eventCoding": {"system": event_system, "code": event},
        "destination": [
            {
                "endpoint": f"urn:ods:{receiver_ods}",
                "receiver": {"identifier": {"system": ODS_SYSTEM, "value": receiver_ods}},
            }
        ],
        "sender": {"reference": f"urn:uuid:{sender['id']}", "identifier": {"system": ODS_SYSTEM, "value": sender_ods}},
        "source": {"endpoint": f"urn:ods:{sender_ods}", "software": "Handover trust client"},
        "focus": [{"reference": f"urn:uuid:{resource['id']}"} for resource in focus],
    }
    if response is not None:
        header["response"] = response
    return header


def message_bundle(entries: list[dict[str, Any]], timestamp: datetime | None = None) -> dict[str, Any]:
    when = (timestamp or datetime.now(UTC)).isoformat(timespec="seconds").replace("+00:00", "Z")
    return {
        "resourceType": "Bundle",
        "id": _uid(),
        "type": "message",
        "identifier": {"system": RFC3986_SYSTEM, "value": f"urn:uuid:{uuid.uuid4()}"},
        "timestamp": when,
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
) -> dict[str, Any]:
    """A `referral` message: local MDT → centre SMDT, focus ServiceRequest, with patient, condition and team."""
    pat = {
        "resourceType": "Patient",
        "id": _uid(),
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": patient.nhs_number}],
        "name": [{"use": "official", "family": patient.family, "given": [patient.given]}],
        "gender": patient.gender,
        "birthDate": patient.birth_date,
    }
    sender, receiver = organization(sender_ods, sender_name), organization(receiver_ods, receiver_name)
    doctor, worker = (
        {
            "resourceType": "Practitioner",
            "id": _uid(),
            "identifier": [{"system": GMC_SYSTEM, "value": c.gmc}],
            "name": [{"family": c.family, "given": [c.given]}],
        }
        for c in (referrer, key_worker)
    )
    role = {
        "resourceType": "PractitionerRole",
        "id": _uid(),
        "practitioner": {"reference": f"urn:uuid:{doctor['id']}"},
        "organization": {"reference": f"urn:uuid:{sender['id']}"},
    }
    condition = {
        "resourceType": "Condition",
        "id": _uid(),
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
        },
        "verificationStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]
        },
        "code": {
            "coding": [{"system": SNOMED, "code": "94381002", "display": "Secondary malignant neoplasm of liver"}]
        },
        "subject": {"reference": f"urn:uuid:{pat['id']}"},
    }
    request = {
        "resourceType": "ServiceRequest",
        "id": _uid(),
        "status": "active",
        "intent": "order",
        "identifier": [{"system": RFC3986_SYSTEM, "value": f"urn:uuid:{uuid.uuid4()}"}],
        "code": {"coding": [{"system": SNOMED, "code": "3457005", "display": "Patient referral"}]},
        "subject": {"reference": f"urn:uuid:{pat['id']}"},
        "requester": {"reference": f"urn:uuid:{role['id']}"},
        "performer": [{"reference": f"urn:uuid:{receiver['id']}"}],
        "reasonReference": [{"reference": f"urn:uuid:{condition['id']}"}],
        "authoredOn": (timestamp or datetime.now(UTC)).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "note": [{"text": "Local MDT: colorectal liver metastases, for SMDT opinion on resection."}],
    }
    header = message_header(event_system, "referral", sender=sender, receiver_ods=receiver_ods, focus=[request])
    return message_bundle([header, request, pat, condition, role, doctor, worker, sender, receiver], timestamp)


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
