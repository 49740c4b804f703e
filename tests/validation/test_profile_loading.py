"""The validator is driven by the conformance resources: change a resource and the rules change, with no code
change. Resources the validator could not apply faithfully are refused when they load, not ignored."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from service.terminology import PROFILES_DIR
from service.validation import Validator, load_validator
from service.validation.loader import NOT_CONFORMANCE

Doc = dict[str, Any]
REFERRAL = json.loads((PROFILES_DIR / "examples" / "Bundle-referral.json").read_text(encoding="utf-8"))


def conformance_files() -> list[Path]:
    return [
        path
        for path in sorted(PROFILES_DIR.rglob("*.json"))
        if not NOT_CONFORMANCE.intersection(path.relative_to(PROFILES_DIR).parts)
    ]


def edited_profiles(tmp_path: Path, name: str, edit: Callable[[Doc], object]) -> Validator:
    target = tmp_path / "fhir_profiles"
    shutil.copytree(PROFILES_DIR, target, ignore=shutil.ignore_patterns("signing-vectors"))
    path = target / name
    doc = json.loads(path.read_text(encoding="utf-8"))
    edit(doc)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return Validator.from_directory(target)


def element(doc: Doc, element_id: str) -> Doc:
    found: Doc = next(e for e in doc["differential"]["element"] if e["id"] == element_id)
    return found


@pytest.mark.parametrize("path", conformance_files(), ids=lambda p: p.name)
def test_every_conformance_resource_is_valid_fhir(path: Path) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    get_fhir_model_class(doc["resourceType"]).model_validate(doc)
    assert doc["url"].startswith(("https://handover.nhs.example/fhir/", "http://hl7.org/fhir/ValueSet/"))


def test_every_event_has_a_message_definition_and_a_header_profile() -> None:
    conformance = load_validator().conformance
    events = json.loads((PROFILES_DIR / "CodeSystem-handover-event.json").read_text(encoding="utf-8"))
    for concept in events["concept"]:
        rule = conformance.message_rule(events["url"], concept["code"])
        assert rule is not None and rule.header_profile is not None, concept["code"]
        assert rule.url == f"https://handover.nhs.example/fhir/MessageDefinition/{concept['code']}"


def test_tightening_a_cardinality_in_the_json_changes_the_verdict(tmp_path: Path) -> None:
    assert load_validator().validate(REFERRAL) == []
    validator = edited_profiles(
        tmp_path, "StructureDefinition-handover-patient.json", lambda d: element(d, "Patient.birthDate").update(max="0")
    )
    assert [(i.expression, i.severity) for i in validator.validate(REFERRAL)] == [
        ("Bundle.entry[2].resource.birthDate", "error")
    ]


def test_a_new_invariant_in_the_json_is_enforced(tmp_path: Path) -> None:
    rule = {
        "key": "test-1",
        "severity": "error",
        "human": "Urgent referrals only (test)",
        "expression": "priority.exists()",
    }
    validator = edited_profiles(
        tmp_path,
        "StructureDefinition-handover-referral.json",
        lambda d: element(d, "ServiceRequest")["constraint"].append(rule),
    )
    assert [i.text for i in validator.validate(REFERRAL)] == ["Urgent referrals only (test) (test-1)"]


def test_the_message_definition_decides_the_focus(tmp_path: Path) -> None:
    def focus_on_patient(doc: Doc) -> None:
        doc["focus"] = [{"code": "Patient", "min": 1, "max": "1"}]

    validator = edited_profiles(tmp_path, "MessageDefinition-referral.json", focus_on_patient)
    assert "Bundle.entry[0].resource.focus[0]" in {i.expression for i in validator.validate(REFERRAL)}


def test_a_value_set_edit_changes_a_required_binding(tmp_path: Path) -> None:
    def drop_female(doc: Doc) -> None:
        doc["compose"]["include"][0]["concept"] = [{"code": "male"}, {"code": "other"}, {"code": "unknown"}]

    validator = edited_profiles(tmp_path, "hl7/ValueSet-administrative-gender.json", drop_female)
    assert [i.expression for i in validator.validate(REFERRAL)] == ["Bundle.entry[2].resource.gender"]


FAULTS: dict[str, tuple[str, Callable[[Doc], object], str]] = {
    "bad-fhirpath": (
        "StructureDefinition-handover-referral.json",
        lambda d: element(d, "ServiceRequest")["constraint"][0].update(expression="reasonCode.exists("),
        "not valid FHIRPath",
    ),
    "unknown-value-set": (
        "StructureDefinition-handover-patient.json",
        lambda d: element(d, "Patient.gender")["binding"].update(valueSet="https://example.org/ValueSet/none"),
        "unknown ValueSet",
    ),
    "unknown-profile": (
        "StructureDefinition-handover-referral.json",
        lambda d: element(d, "ServiceRequest.subject")["type"][0].update(
            targetProfile=["https://handover.nhs.example/fhir/StructureDefinition/nowhere"]
        ),
        "unknown profile",
    ),
    "slice-without-discriminator-value": (
        "StructureDefinition-handover-patient.json",
        lambda d: d["differential"]["element"].remove(element(d, "Patient.identifier:nhsNumber.system")),
        "discriminator",
    ),
    "unexpandable-value-set": (
        "ValueSet-handover-event.json",
        lambda d: d["compose"]["include"][0].update(system="https://example.org/CodeSystem/absent"),
        "not in fhir_profiles",
    ),
}


@pytest.mark.parametrize("name", FAULTS)
def test_a_resource_the_validator_cannot_apply_is_refused_at_load(tmp_path: Path, name: str) -> None:
    file, edit, words = FAULTS[name]
    with pytest.raises(ValueError, match=words):
        edited_profiles(tmp_path, file, edit)


def test_the_canonical_base_of_the_existing_code_systems_is_kept() -> None:
    for name in ("handover-event", "handover-error"):
        doc = json.loads((PROFILES_DIR / f"CodeSystem-{name}.json").read_text(encoding="utf-8"))
        assert doc["url"] == f"https://handover.nhs.example/fhir/CodeSystem/{name}"
