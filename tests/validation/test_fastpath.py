"""The fast path of the FHIRPath invariants (service/validation/fastpath.py) gives exactly fhirpathpy's results:
for every invariant in fhir_profiles/, over the elements of every example (valid and invalid) and of randomly
mutated messages, `holds` (fast path, falling back to fhirpathpy) and `holds_by_fhirpathpy` agree, including on
which data cannot be evaluated (InvariantError)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.terminology import PROFILES_DIR
from service.validation import load_validator
from service.validation.bundle import BundleIndex
from service.validation.fastpath import Fallback
from service.validation.fhirpath import Invariant, InvariantError, resolving_with
from service.validation.loader import _rules

VALIDATOR = load_validator()
INVARIANTS: list[Invariant] = [
    invariant
    for profile in VALIDATOR.conformance.profiles.values()
    for rule in _rules(profile.root)
    for invariant in rule.invariants
]
EXAMPLE_PATHS = sorted((PROFILES_DIR / "examples").glob("Bundle-*.json")) + sorted(
    (PROFILES_DIR / "examples" / "invalid").glob("Bundle-*.json")
)
EXAMPLES = {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in EXAMPLE_PATHS}
Outcome = bool | str


def _outcome(invariant: Invariant, value: Any, resource: Any, *, reference: bool) -> Outcome:
    try:
        if reference:
            return invariant.holds_by_fhirpathpy(value, resource)
        return invariant.holds(value, resource)
    except InvariantError:
        return "cannot be evaluated"


def _elements(value: Any, depth: int = 0) -> Iterator[Any]:
    """Every JSON object (and, at the top, any value) down to two object levels below `value`."""
    if depth == 0 or isinstance(value, dict):
        yield value
    if depth >= 2:
        return
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    for child in children:
        if isinstance(child, (dict, list)):
            yield from _elements(child, depth + (isinstance(child, dict)))


def _compare(doc: Any) -> tuple[int, int]:
    """Assert both evaluations agree for every invariant on every element of every entry (and the Bundle itself);
    returns how many evaluations the fast path decided by itself, and how many there were."""
    decided = total = 0
    entries = doc.get("entry") if isinstance(doc, dict) else None
    resources = [doc] + [
        entry["resource"]
        for entry in (entries if isinstance(entries, list) else [])
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict)
    ]
    with resolving_with(BundleIndex(doc).resolve_for_fhirpath):
        for resource in resources:
            for element in _elements(resource):
                for invariant in INVARIANTS:
                    fast = _outcome(invariant, element, resource, reference=False)
                    slow = _outcome(invariant, element, resource, reference=True)
                    assert fast == slow, (invariant.key, invariant.base, element)
                    total += 1
                    assert invariant.fast is not None
                    try:
                        invariant.fast([element], {"resource": resource})
                        decided += 1
                    except Fallback:
                        pass
    return decided, total


def test_every_invariant_of_our_profiles_takes_the_fast_path() -> None:
    assert INVARIANTS
    assert [invariant.key for invariant in INVARIANTS if invariant.fast is None] == []


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_fast_path_agrees_with_fhirpathpy_on_every_example(name: str) -> None:
    decided, total = _compare(EXAMPLES[name])
    assert decided > total // 2  # the examples are well-formed: the fast path decides most evaluations itself


def test_fast_path_decides_every_invariant_the_validator_applies_to_valid_examples() -> None:
    for name, doc in EXAMPLES.items():
        if name.startswith("Bundle-invalid"):
            continue
        with resolving_with(BundleIndex(doc).resolve_for_fhirpath):
            for entry in doc["entry"]:
                resource = entry["resource"]
                for invariant in INVARIANTS:
                    if invariant.base == resource["resourceType"]:
                        assert invariant.fast is not None
                        invariant.fast([resource], {"resource": resource})  # raises Fallback if it cannot decide


# Values the invariants look at, in every shape the evaluators treat differently.
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-20, max_value=20)
    | st.floats(allow_nan=False, allow_infinity=False, width=16)
    | st.sampled_from(
        [
            "",
            "9434765919",
            "9434765918",
            "943476591",
            "+434765919",
            "RGT",
            "RM1",
            "ok",
            "rejected",
            "accepted",
            "https://fhir.nhs.uk/Id/ods-organization-code",
            "https://fhir.nhs.uk/Id/nhs-number",
            "https://handover.nhs.example/fhir/StructureDefinition/key-worker",
            "http://unitsofmeasure.org",
            "2026-11-24",
            "urn:uuid:a",
            "urn:uuid:b",
        ]
    )
    | st.text(max_size=6)
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["system", "value", "reference", "identifier", "code", "_value", "url", "x"]),
            children,
            max_size=3,
        )
    ),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(EXAMPLES[draw(st.sampled_from(sorted(EXAMPLES)))])
    full_urls = [entry.get("fullUrl") for entry in doc["entry"]]
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        parent: Any = doc
        for part in path[:-1]:
            parent = parent[part]
        key = path[-1]
        operation = draw(st.sampled_from(["delete", "replace", "duplicate", "reference", "extension", "wrap"]))
        if operation == "delete":
            del parent[key]
        elif operation == "replace":
            parent[key] = draw(JSON)
        elif operation == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
        elif operation == "reference":
            parent[key] = {"reference": draw(st.sampled_from(full_urls))}
        elif operation == "extension" and isinstance(parent, dict) and isinstance(key, str):
            parent["_" + key] = {"extension": [{"url": "x", "valueString": "y"}]}
        elif operation == "wrap":
            parent[key] = [parent[key]]
    return doc


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_fast_path_agrees_with_fhirpathpy_on_mutated_messages(doc: dict[str, Any]) -> None:
    _compare(doc)


# Elements built from the names the invariants navigate, holding any of the values above: the shapes the
# invariants meet most often, nested and mixed more freely than mutations of whole messages reach.
NAMES = sorted(
    {
        *("sender", "destination", "receiver", "identifier", "system", "value", "reference", "response", "code"),
        *("details", "reasonCode", "reasonReference", "extension", "url", "businessStatus", "coding", "status"),
        *("statusReason", "requester", "owner", "organization", "entry", "fullUrl", "basedOn", "_value"),
    }
)
ELEMENT_JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(NAMES), children, max_size=4),
    max_leaves=14,
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ELEMENT_JSON | st.dictionaries(st.sampled_from(NAMES), ELEMENT_JSON, max_size=6), ELEMENT_JSON, ELEMENT_JSON)
def test_fast_path_agrees_with_fhirpathpy_on_random_elements(element: Any, first: Any, second: Any) -> None:
    entries = [
        {"fullUrl": full_url, "resource": resource if isinstance(resource, dict) else {"x": resource}}
        for full_url, resource in (("urn:uuid:a", first), ("urn:uuid:b", second))
    ]
    doc = {"resourceType": "Bundle", "entry": entries}
    with resolving_with(BundleIndex(doc).resolve_for_fhirpath):
        for invariant in INVARIANTS:
            for resource in (element, entries[0]["resource"]):
                fast = _outcome(invariant, element, resource, reference=False)
                assert fast == _outcome(invariant, element, resource, reference=True), (invariant.key, element)


@pytest.mark.parametrize(
    "element",
    [
        {"status": [{}, ""]},  # `=` between collections of different sizes is false, so `implies` holds
        {"status": ["rejected", "rejected"], "statusReason": []},
        {"status": "rejected", "_status": {"extension": []}},
        {"identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "943476591\n"}]},
    ],
)
def test_fast_path_agrees_with_fhirpathpy_on_edge_cases(element: dict[str, Any]) -> None:
    for invariant in INVARIANTS:
        assert _outcome(invariant, element, element, reference=False) == _outcome(
            invariant, element, element, reference=True
        ), invariant.key
