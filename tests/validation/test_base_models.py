"""The fast stand-in for the fhir.resources parse (`service.validation.base_models`, issue 12) is never laxer than
fhir.resources: whatever it calls surely valid, `Bundle.model_validate` accepts. Checked on every example message,
on generated referrals (which it must recognise, or intake gains nothing), on the robustness test's random
mutations, and on mutations aimed at primitives: values at the edges of each type's form. The facts intake reads
are the same by either path."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jwk
from pydantic import ValidationError

from adapters.builders import Clinician, SyntheticPatient, referral, synthetic_nhs_number
from service.identity.signing import sign_bundle
from service.messagefacts import read_message_facts
from service.terminology import load_code_system
from service.validation.base_models import surely_valid
from tests.validation.test_validator_robustness import EXAMPLES, mutated_messages

EVENTS = load_code_system("handover-event")

TRICKY = [
    "",
    " ",
    "  x",
    "x  y",
    "x\u00a0y",
    "\u2028",
    "\t",
    "x\x0b",
    "a" * 65,
    "A-1.b",
    "has space",
    "#",
    "urn:uuid:1",
    "2026",
    "2026-02",
    "2026-02-28",
    "2026-02-30",
    "2026-13-01",
    "0000-01-01",
    "2026-01-01T10:00:00",
    "2026-01-01T10:00:00Z",
    "2026-01-01T24:00:00Z",
    "2026-01-01T10:00:60Z",
    "2026-01-01T10:00:00.1234567Z",
    "2026-01-01T10:00:00+14:00",
    "2026-01-01T10:00:00+14:30",
    "2026-01-01T10:00:00+1:00",
    "2026-01-01 10:00:00Z",
    "true",
    True,
    False,
    0,
    -1,
    1,
    2**31,
    -(2**31) - 1,
    1.5,
    None,
    [],
    {},
    ["x"],
    {"x": 1},
    {"value": "x"},
]


def _primitive_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [
            p for key, child in value.items() if key != "resourceType" for p in _primitive_paths(child, (*prefix, key))
        ]
    if isinstance(value, list):
        return [p for index, child in enumerate(value) for p in _primitive_paths(child, (*prefix, index))]
    return [prefix]


@st.composite
def primitive_mutations(draw: st.DrawFn) -> dict[str, Any]:
    """An example message, or a signed referral, with one to three primitive values replaced by edge values."""
    pool = [*sorted(EXAMPLES), "signed referral"]
    name = draw(st.sampled_from(pool))
    doc: dict[str, Any] = copy.deepcopy(SIGNED if name == "signed referral" else EXAMPLES[name])
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(_primitive_paths(doc)))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(TRICKY) | st.text(max_size=8)))
    return doc


def _fhir_accepts(doc: Any) -> bool:
    try:
        Bundle.model_validate(doc)
    except (ValidationError, KeyError, TypeError, ValueError):
        return False
    return True


KEY = jwk.ECKey.generate_key("P-256", private=True).as_dict(private=True)


def _referral(number: int) -> dict[str, Any]:
    """A generated referral, signed as trusts sign them (Bundle.signature.data is base64Binary)."""
    patient = SyntheticPatient(synthetic_nhs_number(number), "Testpatient", "Alex", "1961-04-12", "female")
    clinician = Clinician("Okafor", "Adaeze", "7200001")
    bundle = referral(
        EVENTS.url,
        sender_ods="RGN",
        sender_name="Referrer",
        receiver_ods="RGT",
        receiver_name="Centre",
        patient=patient,
        referrer=clinician,
        key_worker=clinician,
    )
    return sign_bundle(bundle, KEY, "RGN")


SIGNED = _referral(0)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_example_is_recognised_and_accepted(name: str) -> None:
    assert surely_valid(EXAMPLES[name])
    assert _fhir_accepts(EXAMPLES[name])


def test_generated_referrals_take_the_fast_path() -> None:
    for number in range(20):
        assert surely_valid(_referral(number))


@settings(max_examples=2000, suppress_health_check=list(HealthCheck), deadline=None, database=None)
@given(mutated_messages())
def test_random_mutations_are_never_called_valid_when_fhir_resources_refuses(doc: dict[str, Any]) -> None:
    if surely_valid(doc):
        assert _fhir_accepts(doc), json.dumps(doc)[:500]


@settings(max_examples=3000, suppress_health_check=list(HealthCheck), deadline=None, database=None)
@given(primitive_mutations())
def test_primitive_edge_values_are_never_called_valid_when_fhir_resources_refuses(doc: dict[str, Any]) -> None:
    if surely_valid(doc):
        assert _fhir_accepts(doc), json.dumps(doc)[:500]


def test_unknown_elements_extensions_and_comments_are_left_to_fhir_resources() -> None:
    base = _referral(1)
    for change in (
        lambda d: d.update({"unknownElement": "x"}),
        lambda d: d.update({"_timestamp": {"extension": []}}),
        lambda d: d.update({"fhir_comments": ["x"]}),
        lambda d: d["entry"][0]["resource"].update({"eventUri": "urn:x"}),  # a second choice of event[x]
        lambda d: d["entry"][0].update({"resource": {"resourceType": "NotAResource"}}),
        lambda d: d.update({"entry": []}),
    ):
        doc = copy.deepcopy(base)
        change(doc)
        assert not surely_valid(doc)


def test_the_facts_are_the_same_by_either_path(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _referral(2)
    doc["timestamp"] = "2026-11-29T04:30:00.123456+01:00"
    assert surely_valid(doc)
    fast = read_message_facts(doc, EVENTS)
    monkeypatch.setattr("service.messagefacts.surely_valid", lambda _doc: False)
    slow = read_message_facts(doc, EVENTS)
    assert fast == slow
    assert fast.timestamp == datetime(2026, 11, 29, 3, 30, 0, 123456, tzinfo=UTC)
