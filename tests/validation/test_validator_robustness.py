"""The validator never crashes and never changes what it is given: random mutations of every valid example either
stay valid or give profile-violation issues; arbitrary JSON gives issues, not exceptions. The same holds for the
whole report the hub gives ($validate: envelope checks, then the profiles)."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.conformance import check_document
from service.errors import Code
from service.terminology import PROFILES_DIR, load_code_system
from service.validation import load_validator

EVENTS = load_code_system("handover-event")
EXAMPLES = {
    path.stem: json.loads(path.read_text(encoding="utf-8"))
    for path in sorted((PROFILES_DIR / "examples").glob("Bundle-*.json"))
}
RESOURCE_TYPES = ["Patient", "Organization", "Task", "ServiceRequest", "MessageHeader", "Bundle", "Nonsense", ""]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "urn:uuid:00000000-0000-4000-8000-000000000000", "RGT", "#x", "Patient/1", *RESOURCE_TYPES])
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=10,
)
Path = tuple[str | int, ...]


def _paths(value: Any, prefix: Path = ()) -> list[Path]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _parent(doc: Any, path: Path) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


@st.composite
def mutated_messages(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(EXAMPLES[draw(st.sampled_from(sorted(EXAMPLES)))])
    full_urls = [entry["fullUrl"] for entry in doc["entry"]]
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _parent(doc, path), path[-1]
        operation = draw(st.sampled_from(["delete", "replace", "duplicate", "reference", "wrap"]))
        if operation == "delete":
            del parent[key]
        elif operation == "replace":
            parent[key] = draw(JSON)
        elif operation == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
        elif operation == "reference":
            parent[key] = draw(st.sampled_from(full_urls))
        else:
            parent[key] = [parent[key]] if not isinstance(parent[key], list) else {"x": parent[key]}
    return doc


@given(mutated_messages())
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_mutated_messages_give_profile_violations_never_exceptions(doc: dict[str, Any]) -> None:
    before = copy.deepcopy(doc)
    issues = load_validator().validate(doc)
    assert doc == before, "the validator must not change the message"
    for issue in issues:
        assert issue.code is Code.PROFILE_VIOLATION
        assert issue.severity in ("error", "warning")
        assert issue.text and (issue.expression or "").startswith("Bundle")


@given(mutated_messages())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_the_full_report_on_mutated_messages_never_raises(doc: dict[str, Any]) -> None:
    issues = check_document(doc, EVENTS, load_validator())
    assert {issue.code for issue in issues} <= {Code.PROFILE_VIOLATION, Code.NOT_A_MESSAGE}


RANDOM_RESOURCES = st.dictionaries(
    st.sampled_from(["resourceType", "id", "identifier", "subject", "focus", "eventCoding", "reference", "extension"]),
    JSON | st.sampled_from(RESOURCE_TYPES),
    max_size=5,
)
RANDOM_BUNDLES = st.fixed_dictionaries(
    {"resourceType": st.just("Bundle"), "type": st.sampled_from(["message", "collection"])},
    optional={
        "identifier": JSON,
        "entry": st.lists(
            st.fixed_dictionaries({}, optional={"fullUrl": SCALARS, "resource": RANDOM_RESOURCES | JSON}), max_size=5
        ),
    },
)


@given(RANDOM_BUNDLES)
@settings(max_examples=300, deadline=None)
def test_arbitrary_bundles_give_issues_never_exceptions(doc: dict[str, Any]) -> None:
    issues = load_validator().validate(doc)
    assert all(issue.code is Code.PROFILE_VIOLATION for issue in issues)
    assert {issue.code for issue in check_document(doc, EVENTS, load_validator())} <= {
        Code.PROFILE_VIOLATION,
        Code.NOT_A_MESSAGE,
    }


@given(JSON)
@settings(max_examples=100, deadline=None)
def test_any_json_value_is_refused_without_an_exception(value: Any) -> None:
    issues = load_validator().validate(value)
    assert issues and all(issue.severity == "error" for issue in issues if issue.expression == "Bundle")
