"""Messages as trusts build them conform: every builder in adapters/, and the independent contract client's
referral (../shared/conformance/messages.py), unchanged."""

from __future__ import annotations

import importlib.util
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters import builders
from adapters.cwt_items import IptDataSet, Treatment
from adapters.discharge import Stay, discharge_summary
from service.messagefacts import read_message_facts
from service.terminology import load_code_system
from service.validation import load_validator

EVENTS = load_code_system("handover-event")
CONFORMANCE_CLIENT = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "messages.py"
PATIENT = builders.SyntheticPatient(builders.synthetic_nhs_number(7919), "Cley", "Alex", "1961-07-02", "male")
REFERRER = builders.Clinician("Referrer", "Sam", "7000101")
KEY_WORKER = builders.Clinician("Keyworker", "Jo", "7000102")
SURGEON = builders.Clinician("Fenwright", "Morgan", "7100001")
LOCAL = ("RGP", "James Paget University Hospitals NHS Foundation Trust")
CENTRE = ("RGT", "Cambridge University Hospitals NHS Foundation Trust")


def errors(doc: dict[str, Any]) -> list[str]:
    read_message_facts(doc, EVENTS)
    return [f"{i.expression}: {i.text}" for i in load_validator().validate(doc) if i.severity == "error"]


def scenario() -> dict[str, dict[str, Any]]:
    """The demo's messages for one patient (CONTRACT.md section 7), in order."""
    referral = builders.referral(
        EVENTS.url,
        sender_ods=LOCAL[0],
        sender_name=LOCAL[1],
        receiver_ods=CENTRE[0],
        receiver_name=CENTRE[1],
        patient=PATIENT,
        referrer=REFERRER,
        key_worker=KEY_WORKER,
        pathway_start=date(2026, 10, 5),
        ipt=IptDataSet.synthetic(LOCAL[0], PATIENT.nhs_number, date(2026, 10, 20)),
    )
    referral_id = referral["entry"][1]["resource"]["identifier"][0]["value"]
    transfer = builders.transfer_of_care(
        EVENTS.url,
        sender_ods=LOCAL[0],
        sender_name=LOCAL[1],
        receiver_ods=CENTRE[0],
        receiver_name=CENTRE[1],
        patient=PATIENT,
        from_clinician=REFERRER,
        to_clinician=SURGEON,
        referral_identifier=referral_id,
    )
    back = builders.transfer_of_care(
        EVENTS.url,
        sender_ods=CENTRE[0],
        sender_name=CENTRE[1],
        receiver_ods=LOCAL[0],
        receiver_name=LOCAL[1],
        patient=PATIENT,
        from_clinician=SURGEON,
        to_clinician=REFERRER,
        referral_identifier=referral_id,
        note="Back to local oncology follow-up.",
    )
    stay = Stay(date(2026, 12, 1), date(2026, 12, 6), "Laparoscopic liver resection.", "Clinic in 6 weeks.")
    return {
        "referral": referral,
        "referral-accepted": builders.referral_outcome(
            EVENTS.url,
            *CENTRE,
            referral,
            decision="accepted",
            plan="For resection.",
            decided_by=SURGEON,
            decision_to_treat=date(2026, 11, 24),
        ),
        "referral-declined": builders.referral_outcome(
            EVENTS.url,
            *CENTRE,
            referral,
            decision="declined",
            plan="Local care.",
            reason="Unresectable",
            decided_by=SURGEON,
        ),
        "referral-more-information": builders.referral_outcome(
            EVENTS.url,
            *CENTRE,
            referral,
            decision="more-information-needed",
            plan="Re-present with MRI.",
            reason="Liver MRI needed",
            decided_by=SURGEON,
        ),
        "transfer-of-care": transfer,
        "transfer-accepted": builders.transfer_of_care_response(EVENTS.url, *CENTRE, transfer, accepted=True),
        "transfer-rejected": builders.transfer_of_care_response(
            EVENTS.url, *CENTRE, transfer, accepted=False, reason="Not this clinician's patient"
        ),
        "discharge-summary": discharge_summary(
            EVENTS.url,
            sender_ods=CENTRE[0],
            sender_name=CENTRE[1],
            receiver_ods=LOCAL[0],
            receiver_name=LOCAL[1],
            patient=PATIENT,
            author=SURGEON,
            referral_identifier=referral_id,
            stay=stay,
            gp_practice=("D82001", "Synthetic Surgery"),
            timestamp=datetime(2026, 12, 6, 16, 0, tzinfo=UTC),
            treatment=Treatment(date(2026, 12, 2), adjustment_days=3),
        ),
        "transfer-back": back,
        "transfer-back-accepted": builders.transfer_of_care_response(EVENTS.url, *LOCAL, back, accepted=True),
        "acknowledgement": builders.acknowledgement(EVENTS.url, *CENTRE, referral),
        "error-acknowledgement": builders.acknowledgement(EVENTS.url, *CENTRE, referral, code="fatal-error"),
    }


@pytest.mark.parametrize("name", list(scenario()))
def test_builder_messages_conform(name: str) -> None:
    assert errors(scenario()[name]) == []


def test_an_error_acknowledgement_without_details_is_warned_about_but_conforms() -> None:
    issues = load_validator().validate(scenario()["error-acknowledgement"])
    assert [(i.severity, i.text.rsplit("(", 1)[-1]) for i in issues] == [("warning", "hov-ack-1)")]


@pytest.mark.skipif(
    not CONFORMANCE_CLIENT.is_file(), reason="../shared/conformance is not checked out beside this repo"
)
@pytest.mark.parametrize("sender", ["RM1", "RDE", "RGN", "RC9", "RGP", "RCX", "RGR"])
def test_the_independent_contract_client_referral_conforms_unchanged(sender: str) -> None:
    spec = importlib.util.spec_from_file_location("contract_client_messages", CONFORMANCE_CLIENT)
    assert spec is not None and spec.loader is not None
    client = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(client)
    assert errors(client.referral(EVENTS.url, sender, seed=7)) == []
