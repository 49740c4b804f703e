"""Referrals and responses in NHS BaRS form (CONTRACT.md section 4): handled as `referral` / `referral-outcome`,
validated against what the Handover profiles need, and told precisely what is missing."""

from __future__ import annotations

import copy
import json
from typing import Any

from service.terminology import PROFILES_DIR
from service.validation import load_validator
from service.validation.national import handled_as, in_handover_form, party_ods

BARS = "https://fhir.nhs.uk/CodeSystem/message-events-bars"
EVENTS = "https://handover.nhs.example/fhir/CodeSystem/handover-event"


def example(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((PROFILES_DIR / "examples" / f"Bundle-{name}.json").read_text(encoding="utf-8"))
    return doc


def errors(doc: dict[str, Any]) -> set[tuple[str | None, str]]:
    return {(i.expression, i.text) for i in load_validator().validate(doc) if i.severity == "error"}


def test_bars_events_are_handled_as_handover_events() -> None:
    conformance = load_validator().conformance
    assert handled_as(conformance, {"system": BARS, "code": "servicerequest-request"}) == "referral"
    assert handled_as(conformance, {"system": BARS, "code": "servicerequest-response"}) == "referral-outcome"
    assert handled_as(conformance, {"system": EVENTS, "code": "transfer-of-care"}) == "transfer-of-care"
    assert handled_as(conformance, {"system": BARS, "code": "booking-request"}) is None
    assert handled_as(conformance, {"system": EVENTS, "code": "servicerequest-request"}) is None
    assert handled_as(conformance, "referral") is None


def test_a_bars_referral_that_carries_what_handover_needs_conforms() -> None:
    doc = example("bars-servicerequest-request")
    header = doc["entry"][0]["resource"]
    assert "identifier" not in header["sender"] and "identifier" not in header["destination"][0]["receiver"]
    assert errors(doc) == set()
    assert party_ods(doc, header["sender"]) == "RM1"
    assert party_ods(doc, header["destination"][0]["receiver"]) == "RGT"


def test_a_bars_response_carrying_an_smdt_outcome_conforms() -> None:
    assert errors(example("bars-servicerequest-response")) == set()


def test_a_typical_bars_referral_is_told_what_is_missing() -> None:
    doc = example("bars-servicerequest-request")
    request = doc["entry"][1]["resource"]
    role = next(e["resource"] for e in doc["entry"] if e["fullUrl"] == request["requester"]["reference"])
    request["requester"] = dict(role["practitioner"])  # BaRS examples name a Practitioner directly
    request.pop("reasonReference")
    doc.pop("identifier")  # BaRS links messages by Bundle.id
    found = {where for where, _ in errors(doc)}
    assert {"Bundle.identifier", "Bundle.entry[1].resource.requester", "Bundle.entry[1].resource"} <= found


def test_a_bars_response_without_an_outcome_is_not_a_handover_message() -> None:
    doc = example("bars-servicerequest-response")
    doc["entry"][0]["resource"]["focus"] = [{"reference": doc["entry"][2]["fullUrl"]}]  # the Patient, not a Task
    texts = {text for where, text in errors(doc) if where and where.startswith("Bundle.entry[0].resource.focus")}
    assert any("needs 1 focus Task" in text for text in texts)


def test_party_ods_refuses_what_is_not_one_ods_organisation() -> None:
    doc = example("bars-servicerequest-request")
    sender = doc["entry"][0]["resource"]["sender"]
    assert (
        party_ods(doc, {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "rgt"}})
        is None
    )
    assert party_ods(doc, {"reference": doc["entry"][2]["fullUrl"]}) is None  # a Patient
    assert party_ods(doc, "RM1") is None
    twice = copy.deepcopy(doc)
    org = next(e["resource"] for e in twice["entry"] if e["fullUrl"] == sender["reference"])
    org["identifier"].append({"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "RDE"})
    assert party_ods(twice, sender) is None


def test_the_handover_form_of_a_bars_message_passes_the_envelope_checks_and_the_original_is_untouched() -> None:
    from service.messagefacts import read_message_facts
    from service.terminology import load_code_system

    doc = example("bars-servicerequest-request")
    before = copy.deepcopy(doc)
    mapped = in_handover_form(doc, load_validator().conformance)
    facts = read_message_facts(mapped, load_code_system("handover-event"))
    assert (facts.event, facts.sender_ods, facts.recipient_ods) == ("referral", "RM1", "RGT")
    assert doc == before
    handover = example("referral")
    assert in_handover_form(handover, load_validator().conformance) is handover
