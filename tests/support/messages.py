"""Synthetic test messages (NHS numbers from the 999 test range only)."""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any

from adapters import builders
from adapters.pathway import Pathway
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


def pathway(seed: int, *, start: date | None = None, birth_date: str = "1958-03-14") -> Pathway:
    """One synthetic patient's RM1 → RGT pathway (cancer pathway start date `start`, if given)."""
    patient = builders.SyntheticPatient(
        builders.synthetic_nhs_number(seed), "Testpatient", "Alex", birth_date, "female"
    )
    return Pathway(
        EVENT_SYSTEM,
        "RM1",
        NAMES["RM1"],
        "RGT",
        NAMES["RGT"],
        patient,
        builders.Clinician("Referrer", "Sam", "7000001"),
        builders.Clinician("Keyworker", "Jo", "7000002"),
        pathway_start=start,
    )


def error_codes(body: dict[str, Any]) -> list[str]:
    assert body.get("resourceType") == "OperationOutcome", body
    return [c["code"] for issue in body["issue"] for c in issue["details"]["coding"]]
