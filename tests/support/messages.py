"""Synthetic test messages (NHS numbers from the 999 test range only)."""

from __future__ import annotations

import itertools
from typing import Any

from adapters import builders
from tests.support.hub import EVENT_SYSTEM

_seeds = itertools.count(1000)
NAMES = {
    "RGT": "Cambridge University Hospitals NHS Foundation Trust",
    "RM1": "Norfolk and Norwich University Hospitals NHS Foundation Trust",
    "RDE": "East Suffolk and North Essex NHS Foundation Trust",
}


def referral(sender: str = "RM1", receiver: str = "RGT") -> dict[str, Any]:
    seed = next(_seeds)
    patient = builders.SyntheticPatient(
        builders.synthetic_nhs_number(seed), "Testpatient", "Alex", "1958-03-14", "female"
    )
    return builders.referral(
        EVENT_SYSTEM,
        sender_ods=sender,
        sender_name=NAMES.get(sender, sender),
        receiver_ods=receiver,
        receiver_name=NAMES.get(receiver, receiver),
        patient=patient,
        referrer=builders.Clinician("Referrer", "Sam", "7000001"),
        key_worker=builders.Clinician("Keyworker", "Jo", "7000002"),
    )


def error_codes(body: dict[str, Any]) -> list[str]:
    assert body.get("resourceType") == "OperationOutcome", body
    return [c["code"] for issue in body["issue"] for c in issue["details"]["coding"]]
