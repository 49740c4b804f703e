"""The published examples behave as labelled: every valid example conforms with no warning, and every invalid
example produces exactly the error (code and expression) published beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from service.errors import HANDOVER_ERROR_SYSTEM
from service.messagefacts import read_message_facts
from service.terminology import PROFILES_DIR, load_code_system
from service.validation import load_validator

EXAMPLES = PROFILES_DIR / "examples"
EVENTS = load_code_system("handover-event")
VALID = sorted(EXAMPLES.glob("Bundle-*.json"))
INVALID = sorted((EXAMPLES / "invalid").glob("Bundle-invalid-*.json"))


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def test_there_is_a_valid_example_of_every_message_definition() -> None:
    definitions = {
        path.stem.removeprefix("MessageDefinition-") for path in PROFILES_DIR.glob("MessageDefinition-*.json")
    }
    assert {path.stem.removeprefix("Bundle-") for path in VALID} == definitions
    assert set(EVENTS.codes) < definitions  # and the BaRS forms the hub accepts


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_example_conforms_without_warnings(path: Path) -> None:
    doc = load(path)
    if doc["entry"][0]["resource"]["eventCoding"]["system"] == EVENTS.url:
        read_message_facts(doc, EVENTS)  # the envelope checks accept it too (BaRS form: once they are wired)
    assert load_validator().validate(doc) == []


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_example_produces_its_published_error(path: Path) -> None:
    expected = load(path.with_name(path.name.replace("Bundle-", "OperationOutcome-")))
    issues = load_validator().validate(load(path))
    for published in expected["issue"]:
        code = next(c["code"] for c in published["details"]["coding"] if c["system"] == HANDOVER_ERROR_SYSTEM)
        matching = [
            issue
            for issue in issues
            if issue.severity == "error" and issue.code.value == code and issue.expression in published["expression"]
        ]
        assert matching, f"{path.name}: no {code} error at {published['expression']}; got {issues}"


def test_every_event_has_at_least_one_invalid_example() -> None:
    events = {load(path)["entry"][0]["resource"]["eventCoding"]["code"] for path in INVALID}
    assert set(EVENTS.codes) <= events
