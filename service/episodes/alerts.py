"""Safety-net alert messages: a hub-signed `acknowledgement` telling the waiting party an answer is overdue.

MessageHeader.response.identifier names the message still waiting for its answer, response.code is
`transient-error` (the handover is stalled, not failed) and response.details is an OperationOutcome whose
issue carries a code from the `handover-alert` CodeSystem (see fhir_profiles/CodeSystem-handover-alert.json
for why the acknowledgement event carries alerts). No clinical content and no patient identifiers: the
recipient finds the patient through the message it sent.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from service.receipts import HUB_IDENTIFIER_SYSTEM
from service.signing import sign_bundle
from service.terminology import ODS_SYSTEM, RFC3986_SYSTEM

ALERT_SYSTEM = "https://handover.nhs.example/fhir/CodeSystem/handover-alert"
_WHAT = {
    "acknowledgement": "a business acknowledgement",
    "smdt-outcome": "the SMDT outcome",
    "transfer-response": "a response to the transfer of care",
    "discharge-summary": "the discharge summary",
}


def build_alert(
    *,
    event_system: str,
    kind: str,
    waiting_ods: str,
    owed_by: str,
    awaited_header_id: str,
    due_at: datetime,
    now: datetime,
    hub_private_jwk: Mapping[str, Any],
) -> tuple[dict[str, Any], bytes]:
    """The alert Bundle and its exact bytes, signed by the hub."""
    header_id, outcome_id = str(uuid.uuid4()), str(uuid.uuid4())
    text = (
        f"{owed_by} has not sent {_WHAT[kind]} for your message {awaited_header_id}; it was due at "
        f"{due_at.isoformat(timespec='minutes')}. The handover is stalled: please follow it up."
    )
    outcome = {
        "resourceType": "OperationOutcome",
        "id": outcome_id,
        "issue": [
            {
                "severity": "warning",
                "code": "timeout",
                "details": {"coding": [{"system": ALERT_SYSTEM, "code": f"{kind}-overdue"}], "text": text},
            }
        ],
    }
    header = {
        "resourceType": "MessageHeader",
        "id": header_id,
        "eventCoding": {"system": event_system, "code": "acknowledgement"},
        "destination": [
            {
                "endpoint": f"urn:ods:{waiting_ods}",
                "receiver": {"identifier": {"system": ODS_SYSTEM, "value": waiting_ods}},
            }
        ],
        "source": {"endpoint": "urn:handover:hub", "software": "Handover safety net"},
        "response": {
            "identifier": awaited_header_id,
            "code": "transient-error",
            "details": {"reference": f"urn:uuid:{outcome_id}"},
        },
    }
    stamp = now.isoformat(timespec="seconds").replace("+00:00", "Z")
    bundle = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "message",
        "identifier": {"system": RFC3986_SYSTEM, "value": f"urn:uuid:{uuid.uuid4()}"},
        "timestamp": stamp,
        "entry": [
            {"fullUrl": f"urn:uuid:{header_id}", "resource": header},
            {"fullUrl": f"urn:uuid:{outcome_id}", "resource": outcome},
        ],
    }
    signed = sign_bundle(bundle, hub_private_jwk, "hub", when=now)
    signed["signature"]["who"] = {
        "identifier": {"system": HUB_IDENTIFIER_SYSTEM, "value": "hub"},
        "display": "Handover hub",
    }
    return signed, json.dumps(signed, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
