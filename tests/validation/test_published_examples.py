"""Published HL7 R4 and NHS BaRS examples (tests/data, see SOURCE.md) go through the validator and the full report
without a crash, and what they lack as Handover messages is said precisely."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from service.conformance import check_document
from service.errors import Code
from service.terminology import PROFILES_DIR, load_code_system
from service.validation import load_validator
from service.validation.bundle import BundleIndex

DATA = Path(__file__).resolve().parents[1] / "data"
PUBLISHED = sorted(DATA.rglob("*.json"))
EVENTS = load_code_system("handover-event")


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def test_the_published_examples_are_there() -> None:
    assert len(PUBLISHED) >= 3
    assert (DATA / "SOURCE.md").is_file()


@pytest.mark.parametrize("path", PUBLISHED, ids=lambda p: p.name)
def test_published_example_is_reported_on_without_a_crash(path: Path) -> None:
    doc = load(path)
    issues = load_validator().validate(doc)
    assert issues, "none of these is a Handover message"
    assert all(issue.code is Code.PROFILE_VIOLATION for issue in issues)
    report = check_document(doc, EVENTS, load_validator())
    assert report and {issue.code for issue in report} <= {Code.PROFILE_VIOLATION, Code.NOT_A_MESSAGE}


def test_bars_message_is_told_precisely_what_a_handover_message_needs() -> None:
    issues = load_validator().validate(load(DATA / "bars" / "POST-body.json"))
    errors = {(issue.expression, issue.text.split(" (")[0]) for issue in issues if issue.severity == "error"}
    wanted = {
        "Bundle.identifier": "Bundle.identifier",
        "Bundle.timestamp": "Bundle.timestamp",
        "Bundle.entry[0].fullUrl": "Bundle.entry.fullUrl",
        "Bundle.entry[0].resource.sender": "MessageHeader.sender",
        "Bundle.entry[0].resource.destination": "MessageHeader.destination",
        "Bundle.entry[0].resource.event.ofType(Coding)": "MessageHeader.event[x] must use a code",
    }
    for expression, words in wanted.items():
        assert any(where == expression and words in text for where, text in errors), (expression, sorted(errors))


def test_hl7_reference_examples_resolve_as_the_fhir_bundle_rules_say() -> None:
    doc = load(DATA / "hl7-r4" / "bundle-references.json")
    index = BundleIndex(doc)
    resolved = {
        found.expression: (target.expression if (target := index.resolve(found.reference, found.container)) else None)
        for found in index.references()
    }
    assert (
        resolved
        == {
            "Bundle.entry[2].resource.subject": "Bundle.entry[0].resource",  # Patient/23 against base http://example.org/fhir
            "Bundle.entry[3].resource.subject": "Bundle.entry[0].resource",  # absolute
            "Bundle.entry[4].resource.subject": "Bundle.entry[1].resource",  # urn:uuid
            "Bundle.entry[5].resource.subject": None,  # another server's Patient, not in the Bundle
            "Bundle.entry[6].resource.subject": None,  # Patient/23 against base fhir-2: not in the Bundle
            "Bundle.entry[9].resource.subject": "Bundle.entry[8].resource",  # Patient/45/_history/2: version 2
        }
    )


def test_hl7_resources_inside_a_handover_message_are_checked_not_crashed_on() -> None:
    message = json.loads((PROFILES_DIR / "examples" / "Bundle-acknowledgement.json").read_text(encoding="utf-8"))
    for entry in load(DATA / "hl7-r4" / "bundle-references.json")["entry"]:
        message["entry"].append(copy.deepcopy(entry))
    issues = load_validator().validate(message)
    expressions = {issue.expression for issue in issues if issue.severity == "error"}
    assert "Bundle" in expressions  # duplicate fullUrl (hov-bdl-1)
    assert "Bundle.entry[3]" in expressions  # a second Patient
    assert "Bundle.entry[7].resource.subject.reference" in expressions  # the unresolvable fhir-2 Patient
    assert "Bundle.entry[2].fullUrl" in expressions  # not a urn:uuid
