"""Safety-net alert messages: a hub-signed `acknowledgement` telling the waiting party an answer is overdue.

MessageHeader.response.identifier names the message still waiting for its answer, response.code is
`transient-error` (the handover is stalled, not failed) and response.details is an OperationOutcome whose
issue carries a code from the `handover-alert` CodeSystem (see fhir_profiles/CodeSystem-handover-alert.json
for why the acknowledgement event carries alerts). No clinical content and no patient identifiers: the
recipient finds the patient through the message it sent. Cancer pathway clock alerts take the same form,
naming the referral message.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from service.hubmessages import hub_header, signed_hub_message

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
    text = (
        f"{owed_by} has not sent {_WHAT[kind]} for your message {awaited_header_id}; it was due at "
        f"{due_at.isoformat(timespec='minutes')}. The handover is stalled: please follow it up."
    )
    return _signed_alert(
        event_system,
        code=f"{kind}-overdue",
        text=text,
        to_ods=waiting_ods,
        about_header_id=awaited_header_id,
        now=now,
        hub_private_jwk=hub_private_jwk,
    )


def build_clock_alert(
    *,
    event_system: str,
    code: str,
    recipient_ods: str,
    referral_header_id: str,
    target: date,
    now: datetime,
    hub_private_jwk: Mapping[str, Any],
) -> tuple[dict[str, Any], bytes]:
    """A cancer pathway clock alert (`day-38-breached`, `day-62-approaching`, `day-62-breached`) about the
    patient of the referral message `referral_header_id`, signed by the hub."""
    when = target.isoformat()
    text = {
        "day-38-breached": f"The inter-provider transfer of referral {referral_header_id} missed its day-38 target "
        f"({when}): the complete data set reached the centre after it, or has not reached it yet.",
        "day-62-approaching": f"The day-62 treatment target for the patient of referral {referral_header_id} is "
        f"{when} and treatment has not started: please review the plan.",
        "day-62-breached": f"The day-62 treatment target for the patient of referral {referral_header_id} passed on "
        f"{when} without treatment starting: the cancer waiting time standard is breached.",
    }[code]
    return _signed_alert(
        event_system,
        code=code,
        text=text,
        to_ods=recipient_ods,
        about_header_id=referral_header_id,
        now=now,
        hub_private_jwk=hub_private_jwk,
    )


def _signed_alert(
    event_system: str,
    *,
    code: str,
    text: str,
    to_ods: str,
    about_header_id: str,
    now: datetime,
    hub_private_jwk: Mapping[str, Any],
) -> tuple[dict[str, Any], bytes]:
    outcome_id = str(uuid.uuid4())
    outcome = {
        "resourceType": "OperationOutcome",
        "id": outcome_id,
        "issue": [
            {
                "severity": "warning",
                "code": "timeout",
                "details": {"coding": [{"system": ALERT_SYSTEM, "code": code}], "text": text},
            }
        ],
    }
    header = hub_header(
        event_system=event_system,
        event="acknowledgement",
        to_ods=to_ods,
        software="Handover safety net",
        response={
            "identifier": about_header_id,
            "code": "transient-error",
            "details": {"reference": f"urn:uuid:{outcome_id}"},
        },
    )
    return signed_hub_message([header, outcome], at=now, hub_private_jwk=hub_private_jwk)
