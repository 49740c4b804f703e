"""A full conformance report for one document, as `handover validate` and `POST /fhir/Bundle/$validate` give it.

It runs what the hub runs on a message, minus the signature and routing: the envelope checks of
service/messagefacts.py (message shape, R4 model parsing, routing facts; on the Handover form of a BaRS message),
then the profile validator on the message as sent. Issues the
envelope already reported at an element are not repeated by the profile checks.
"""

from __future__ import annotations

from typing import Any

from service.errors import Code, HandoverError, Issue, operation_outcome
from service.messagefacts import read_message_facts
from service.terminology import CodeSystem
from service.validation.engine import Validator
from service.validation.national import in_handover_form

CONFORMS_TEXT = "The message conforms to the Handover profiles"


def check_document(doc: dict[str, Any], events: CodeSystem, validator: Validator) -> list[Issue]:
    """Every envelope and profile issue of `doc` (errors first). Refuses nothing itself: a document that is not
    a message at all gives that one issue."""
    envelope: list[Issue] = []
    try:
        read_message_facts(in_handover_form(doc, validator.conformance), events)
    except HandoverError as refusal:
        if refusal.code is not Code.PROFILE_VIOLATION:
            return refusal.issues
        envelope = refusal.issues
    reported = {issue.expression for issue in envelope}
    profile = [issue for issue in validator.validate(doc) if issue.expression not in reported]
    return sorted([*envelope, *profile], key=lambda issue: issue.severity != "error")


def unwrap_parameters(doc: dict[str, Any]) -> dict[str, Any]:
    """The resource to validate: `doc` itself, or the `resource` parameter of a FHIR $validate Parameters body."""
    if doc.get("resourceType") != "Parameters":
        return doc
    for parameter in doc.get("parameter") or []:
        if isinstance(parameter, dict) and parameter.get("name") == "resource":
            resource = parameter.get("resource")
            if isinstance(resource, dict):
                return resource
    raise HandoverError(
        Code.NOT_A_MESSAGE, "A Parameters body must carry the message in its 'resource' parameter", "Parameters"
    )


def validation_outcome(issues: list[Issue]) -> dict[str, Any]:
    """The $validate OperationOutcome: every issue, and an information issue when nothing blocks the message."""
    rendered: list[dict[str, Any]] = []
    if issues:
        rendered = operation_outcome(issues)["issue"]
    if not any(issue.severity == "error" for issue in issues):
        rendered.append(
            {
                "severity": "information",
                "code": "informational",
                "details": {"text": CONFORMS_TEXT},
                "diagnostics": CONFORMS_TEXT
                + ("" if not issues else f" (with {len(issues)} warning{'s' if len(issues) > 1 else ''})"),
            }
        )
    return {"resourceType": "OperationOutcome", "issue": rendered}
