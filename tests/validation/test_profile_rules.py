"""Each rule the validator applies, shown failing: one deliberate fault in a valid example, and the issue (severity,
FHIRPath expression, plain-English text) it must produce. All rules come from fhir_profiles/."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from service.errors import Code
from service.terminology import PROFILES_DIR
from service.validation import blocking, load_validator

Doc = dict[str, Any]


def example(event: str) -> Doc:
    doc: Doc = json.loads((PROFILES_DIR / "examples" / f"Bundle-{event}.json").read_text(encoding="utf-8"))
    return doc


def res(doc: Doc, index: int) -> Doc:
    resource: Doc = doc["entry"][index]["resource"]
    return resource


def issues_after(event: str, fault: Callable[[Doc], object]) -> list[tuple[str, str | None, str]]:
    doc = example(event)
    fault(doc)
    return [(i.severity, i.expression, i.text) for i in load_validator().validate(doc)]


def _add_second_patient(doc: Doc) -> None:
    doc["entry"].append(
        {"fullUrl": "urn:uuid:5b0e6b0c-0b1d-4a4e-9c39-000000000001", "resource": copy.deepcopy(res(doc, 2))}
    )


def _contained_imaging(doc: Doc, reference: str = "#ct1") -> None:
    res(doc, 1)["contained"] = [{"resourceType": "Observation", "id": "ct1", "status": "final", "code": {"text": "CT"}}]
    res(doc, 1)["supportingInfo"] = [{"reference": reference}]


RULES: dict[str, tuple[str, Callable[[Doc], object], str, str]] = {
    # name: (example, fault, expression of the error, words the text must contain)
    "cardinality-min": (
        "referral",
        lambda d: res(d, 2).pop("birthDate"),
        "Bundle.entry[2].resource.birthDate",
        "required",
    ),
    "cardinality-max-zero": (
        "referral",
        lambda d: d["entry"][1].update(request={"method": "POST", "url": "ServiceRequest"}),
        "Bundle.entry[1].request",
        "must not be present",
    ),
    "cardinality-slice": (
        "referral",
        lambda d: res(d, 2)["identifier"][0].update(system="https://example.org/mrn"),
        "Bundle.entry[2].resource.identifier",
        "nhsNumber",
    ),
    "cardinality-slice-max": (
        "referral",
        lambda d: res(d, 2)["identifier"].insert(1, dict(res(d, 2)["identifier"][0])),
        "Bundle.entry[2].resource.identifier[1]",
        "at most 1",
    ),
    "fixed-uri": (
        "referral",
        lambda d: d["identifier"].update(system="https://example.org/ids"),
        "Bundle.identifier.system",
        "must be exactly 'urn:ietf:rfc:3986'",
    ),
    "fixed-code": (
        "discharge-summary",
        lambda d: res(d, 1).update(status="preliminary"),
        "Bundle.entry[1].resource.status",
        "must be exactly 'final'",
    ),
    "pattern-codeable-concept": (
        "transfer-of-care",
        lambda d: res(d, 1)["code"]["coding"][0].update(code="3457005"),
        "Bundle.entry[1].resource.code",
        "308292007",
    ),
    "required-binding-handover": (
        "referral-outcome",
        lambda d: res(d, 1)["businessStatus"]["coding"][0].update(code="perhaps"),
        "Bundle.entry[1].resource.businessStatus",
        "handover-smdt-outcome",
    ),
    "required-binding-hl7": (
        "referral",
        lambda d: res(d, 2).update(gender="unspecified"),
        "Bundle.entry[2].resource.gender",
        "administrative-gender",
    ),
    "required-binding-event": (
        "referral",
        lambda d: res(d, 0)["eventCoding"].update(code="gossip"),
        "Bundle.entry[0].resource.event.ofType(Coding)",
        "handover-message-events",
    ),
    "data-type-choice": (
        "referral",
        lambda d: (res(d, 0).pop("eventCoding"), res(d, 0).update(eventUri="urn:example:referral")),
        "Bundle.entry[0].resource.event.ofType(uri)",
        "must be of type Coding",
    ),
    "data-type-extension-value": (
        "referral",
        lambda d: res(d, 1)["extension"][1].update(valueString=res(d, 1)["extension"][1].pop("valueDate")),
        "Bundle.entry[1].resource.extension[1].value.ofType(string)",
        "must be of type date",
    ),
    "reference-target-type": (
        "referral",
        lambda d: res(d, 1)["subject"].update(reference=d["entry"][3]["fullUrl"]),
        "Bundle.entry[1].resource.subject",
        "must refer to a Patient, not a Condition",
    ),
    "reference-target-type-in-extension": (
        "referral",
        lambda d: res(d, 1)["extension"][0]["valueReference"].update(reference=d["entry"][2]["fullUrl"]),
        "Bundle.entry[1].resource.extension[0].value.ofType(Reference)",
        "Practitioner or PractitionerRole",
    ),
    "reference-dangling": (
        "referral",
        lambda d: res(d, 1)["subject"].update(reference="urn:uuid:5b0e6b0c-0b1d-4a4e-9c39-00000000dead"),
        "Bundle.entry[1].resource.subject.reference",
        "does not resolve",
    ),
    "reference-relative-with-urn-fullurls": (
        "referral",
        lambda d: res(d, 1)["subject"].update(reference=f"Patient/{res(d, 2)['id']}"),
        "Bundle.entry[1].resource.subject.reference",
        "fullUrl",
    ),
    "full-url-duplicate": (
        "referral",
        lambda d: d["entry"][5].update(fullUrl=d["entry"][6]["fullUrl"]),
        "Bundle",
        "unique",
    ),
    "full-url-not-uuid": (
        "referral",
        lambda d: d["entry"][8].update(fullUrl="Organization/8"),
        "Bundle.entry[8].fullUrl",
        "urn:uuid",
    ),
    "full-url-upper-case": (
        "referral",
        lambda d: d["entry"][9].update(fullUrl=d["entry"][9]["fullUrl"].upper().replace("URN:UUID:", "urn:uuid:")),
        "Bundle.entry[9].fullUrl",
        "lower-case",
    ),
    "bundle-identifier-uuid": (
        "referral",
        lambda d: d["identifier"].update(value="urn:uuid:NOT-A-UUID"),
        "Bundle.identifier.value",
        "urn:uuid",
    ),
    "invariant": ("referral", lambda d: res(d, 1).pop("reasonReference"), "Bundle.entry[1].resource", "hov-ref-1"),
    "invariant-with-resolve": (
        "referral",
        lambda d: res(d, 8)["identifier"][0].update(value="RDE"),
        "Bundle.entry[0].resource",
        "hov-mh-2",
    ),
    "message-focus-type": (
        "referral",
        lambda d: res(d, 0)["focus"][0].update(reference=d["entry"][2]["fullUrl"]),
        "Bundle.entry[0].resource.focus[0]",
        "must be ServiceRequest",
    ),
    "message-focus-missing": (
        "referral",
        lambda d: res(d, 0).pop("focus"),
        "Bundle.entry[0].resource.focus",
        "needs 1",
    ),
    "message-focus-twice": (
        "transfer-of-care",
        lambda d: res(d, 0)["focus"].append(dict(res(d, 0)["focus"][0])),
        "Bundle.entry[0].resource.focus",
        "needs 1",
    ),
    "message-sender-is-receiver": (
        "referral",
        lambda d: res(d, 0)["destination"][0]["receiver"]["identifier"].update(value="RM1"),
        "Bundle.entry[0].resource",
        "other than its sender",
    ),
    "message-patient-present": (
        "referral",
        lambda d: d["entry"].pop(2),
        "Bundle.entry[1].resource.subject.reference",
        "resolve",
    ),
    "message-patient-named-by-task": (
        "referral-outcome",
        lambda d: res(d, 1).pop("for"),
        "Bundle.entry[1].resource.for",
        "required",
    ),
    "message-one-patient": ("referral", _add_second_patient, "Bundle.entry[10]", "at most one Patient"),
    "message-header-first": ("referral", lambda d: d["entry"].reverse(), "Bundle.entry[0].resource", "MessageHeader"),
    "message-event-header-profile": (
        "referral",
        lambda d: res(d, 0).update(response={"identifier": "x", "code": "ok"}),
        "Bundle.entry[0].resource.response",
        "must not be present",
    ),
    "transfer-between-organisations": (
        "transfer-of-care-response",
        lambda d: res(d, 1)["owner"].update(reference=res(d, 1)["requester"]["reference"]),
        "Bundle.entry[1].resource",
        "two different organisations",
    ),
}


@pytest.mark.parametrize("name", RULES)
def test_rule_reports_an_error_at_the_element(name: str) -> None:
    event, fault, expression, words = RULES[name]
    found = [
        text for severity, where, text in issues_after(event, fault) if severity == "error" and where == expression
    ]
    assert any(words in text for text in found), (name, issues_after(event, fault))


NHS_NUMBERS = {
    "checksum": "9990042421",
    "check-digit-ten": "9990042420",
    "nine-digits": "999004243",
    "eleven-digits": "99900424300",
    "full-width": "\uff19\uff19\uff19\uff10\uff10\uff14\uff12\uff14\uff13\uff16",
    "trailing-newline": "999004243\n",
    "spaces": "999 004 2436",
    "letters": "99900424AB",
}


@pytest.mark.parametrize("value", NHS_NUMBERS.values(), ids=list(NHS_NUMBERS))
def test_nhs_number_must_be_ten_ascii_digits_with_modulus_11(value: str) -> None:
    found = issues_after("referral", lambda d: res(d, 2)["identifier"][0].update(value=value))
    assert ("error", "Bundle.entry[2].resource.identifier[0]") in {(s, w) for s, w, _ in found}


ODS_CODES = {
    "lower-case": "rgt",
    "cyrillic-te": "RG\u0422",
    "too-short": "RG",
    "too-long": "RGT45678901",
    "newline": "RGT\n",
    "space": "R GT",
    "full-width": "\uff32\uff27\uff34",
}


@pytest.mark.parametrize("value", ODS_CODES.values(), ids=list(ODS_CODES))
def test_ods_code_must_be_3_to_10_upper_case_ascii_letters_or_digits(value: str) -> None:
    found = issues_after(
        "referral", lambda d: res(d, 0)["destination"][0]["receiver"]["identifier"].update(value=value)
    )
    where = "Bundle.entry[0].resource.destination[0].receiver.identifier.value"
    assert ("error", where) in {(s, w) for s, w, _ in found}


def test_contained_reference_resolves_and_a_missing_one_does_not() -> None:
    assert issues_after("referral", _contained_imaging) == []
    missing = issues_after("referral", lambda d: _contained_imaging(d, "#ct2"))
    assert [(s, w) for s, w, _ in missing] == [("error", "Bundle.entry[1].resource.supportingInfo[0].reference")]


def test_extensible_binding_gives_a_warning_that_does_not_block() -> None:
    doc = example("referral")
    res(doc, 1)["code"]["coding"][0].update(code="306206005", display="Referral to service")
    issues = load_validator().validate(doc)
    assert [(i.severity, i.expression) for i in issues] == [("warning", "Bundle.entry[1].resource.code")]
    assert not blocking(issues)


def test_missing_key_worker_and_pathway_start_are_warnings_only() -> None:
    doc = example("referral")
    res(doc, 1).pop("extension")
    issues = load_validator().validate(doc)
    assert {"hov-ref-2)", "hov-ref-3)"} <= {i.text.rsplit("(", 1)[-1] for i in issues}
    assert all(i.severity == "warning" for i in issues) and not blocking(issues)


def test_unreferenced_entry_is_a_warning() -> None:
    doc = example("acknowledgement")
    doc["entry"].append(
        {"fullUrl": "urn:uuid:5b0e6b0c-0b1d-4a4e-9c39-000000000002", "resource": {"resourceType": "Basic"}}
    )
    issues = load_validator().validate(doc)
    assert [(i.severity, i.expression) for i in issues] == [("warning", "Bundle.entry[2].resource")]


def test_all_errors_are_reported_at_once() -> None:
    def faults(d: Doc) -> None:
        res(d, 2).pop("birthDate")
        res(d, 2)["identifier"][0]["value"] = "9990042421"
        res(d, 1).pop("reasonReference")
        d["entry"][8]["fullUrl"] = "Organization/8"

    errors = [where for severity, where, _ in issues_after("referral", faults) if severity == "error"]
    assert {
        "Bundle.entry[2].resource.birthDate",
        "Bundle.entry[2].resource.identifier[0]",
        "Bundle.entry[1].resource",
        "Bundle.entry[8].fullUrl",
    } <= set(errors)


SECRETS: dict[str, Callable[[Doc], object]] = {
    "gender": lambda d: res(d, 2).update(gender="SECRET-1"),
    "nhs-number": lambda d: res(d, 2)["identifier"][0].update(value="SECRET-2"),
    "ods": lambda d: res(d, 0)["sender"]["identifier"].update(value="SECRET-3"),
    "full-url": lambda d: d["entry"][3].update(fullUrl="SECRET-4"),
    "reference": lambda d: res(d, 1)["subject"].update(reference="SECRET-5"),
    "event": lambda d: res(d, 0)["eventCoding"].update(code="SECRET-6"),
    "status": lambda d: res(d, 1).update(status="SECRET-7"),
    "resource-type-of-target": lambda d: res(d, 3).update(resourceType="SECRET-8"),
}


@pytest.mark.parametrize("name", SECRETS)
def test_issues_never_quote_the_message_values(name: str) -> None:
    found = issues_after("referral", SECRETS[name])
    assert found, name
    assert all("SECRET" not in f"{where} {text}" for _, where, text in found), found


def test_every_issue_is_a_profile_violation_with_a_bundle_expression() -> None:
    doc = example("discharge-summary")
    doc["entry"][1]["resource"]["section"] = []
    doc["entry"][2]["resource"]["identifier"] = []
    issues = load_validator().validate(doc)
    assert issues
    assert all(i.code is Code.PROFILE_VIOLATION and (i.expression or "").startswith("Bundle") for i in issues)
