"""What the hub must know about an inbound message to route it: read from the Bundle, or refused.

It checks the envelope only (a FHIR R4 message Bundle whose first entry is the MessageHeader, valid against the
fhir.resources R4B models, or their fast stand-in in service/validation/base_models.py) and the routing facts;
full profile validation belongs to service/validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

from service.errors import Code, HandoverError, Issue
from service.terminology import ODS_SYSTEM, RFC3986_SYSTEM, URN_UUID, CodeSystem, is_ods_code
from service.validation.base_models import parse_date_time, surely_valid

MH = "Bundle.entry[0].resource"


@dataclass(frozen=True)
class MessageFacts:
    event: str
    sender_ods: str
    recipient_ods: str
    bundle_identifier: str
    message_header_id: str
    timestamp: datetime


def read_message_facts(doc: dict[str, Any], events: CodeSystem) -> MessageFacts:
    """Return the routing facts of a strictly-parsed JSON document, or raise one HandoverError with every issue."""
    _require_message_shape(doc)
    _require_known_resource_types(doc)
    timestamp = _valid_r4_timestamp(doc)

    header = doc["entry"][0]["resource"]
    issues: list[Issue] = []

    identifier = doc.get("identifier") or {}
    if identifier.get("system") != RFC3986_SYSTEM or not URN_UUID.fullmatch(str(identifier.get("value", ""))):
        issues.append(
            _issue(
                "Bundle.identifier must have system urn:ietf:rfc:3986 and a lower-case urn:uuid value",
                "Bundle.identifier",
            )
        )
    if timestamp is None:
        issues.append(_issue("Bundle.timestamp is required", "Bundle.timestamp"))
    if not header.get("id"):
        issues.append(_issue("MessageHeader.id is required: responses refer to it", f"{MH}.id"))

    coding = header.get("eventCoding") or {}
    if coding.get("system") != events.url or coding.get("code") not in events.codes:
        issues.append(
            _issue(
                f"MessageHeader.eventCoding must be a code from {events.url}: " + ", ".join(sorted(events.codes)),
                f"{MH}.eventCoding",
            )
        )

    sender = _ods_of(header.get("sender"))
    if sender is None:
        issues.append(
            _issue(
                "MessageHeader.sender must identify the sending organisation by its ODS code "
                f"(identifier.system {ODS_SYSTEM})",
                f"{MH}.sender.identifier",
            )
        )

    destinations = header.get("destination") or []
    recipient = _ods_of(destinations[0].get("receiver")) if len(destinations) == 1 else None
    if len(destinations) != 1:
        issues.append(
            _issue("MessageHeader.destination must name exactly one receiving organisation", f"{MH}.destination")
        )
    elif recipient is None:
        issues.append(
            _issue(
                "MessageHeader.destination.receiver must identify the receiving organisation by its "
                f"ODS code (identifier.system {ODS_SYSTEM})",
                f"{MH}.destination[0].receiver.identifier",
            )
        )

    if issues:
        raise _profile_violation(issues)
    assert sender is not None
    assert recipient is not None
    assert timestamp is not None
    return MessageFacts(
        event=coding["code"],
        sender_ods=sender,
        recipient_ods=recipient,
        bundle_identifier=identifier["value"],
        message_header_id=header["id"],
        timestamp=timestamp,
    )


def _valid_r4_timestamp(doc: dict[str, Any]) -> datetime | None:
    """Bundle.timestamp, having checked the whole document against the R4B base models: by the fast stand-in
    (`surely_valid`) when it recognises the document, else by fhir.resources, which words any errors."""
    if surely_valid(doc):
        stamp = doc.get("timestamp")
        return None if stamp is None else parse_date_time(stamp)  # an instant: surely_valid checked its form
    try:
        return Bundle.model_validate(doc).timestamp
    except ValidationError as exc:
        raise _profile_violation([_issue_from_pydantic(err) for err in exc.errors(include_input=False)]) from None
    except Exception:  # noqa: BLE001 - the model library's own faults on odd input (e.g. AttributeError for a
        # url given as a number): a refusal, never a 500
        raise _profile_violation([_issue("The Bundle could not be read as FHIR R4", "Bundle")]) from None


def _require_message_shape(doc: dict[str, Any]) -> None:
    if doc.get("resourceType") != "Bundle":
        raise HandoverError(Code.NOT_A_MESSAGE, "The body must be a FHIR Bundle", "Bundle")
    if doc.get("type") != "message":
        raise HandoverError(Code.NOT_A_MESSAGE, "Bundle.type must be 'message'", "Bundle.type")
    entries = doc.get("entry")
    first = entries[0] if isinstance(entries, list) and entries else None
    resource = first.get("resource") if isinstance(first, dict) else None
    if not isinstance(resource, dict) or resource.get("resourceType") != "MessageHeader":
        raise HandoverError(
            Code.NOT_A_MESSAGE,
            "The first entry of a message Bundle must be its MessageHeader",
            "Bundle.entry[0].resource",
        )


def _require_known_resource_types(doc: dict[str, Any]) -> None:
    issues = []
    for index, entry in enumerate(doc["entry"]):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        kind = resource.get("resourceType") if isinstance(resource, dict) else None
        if not isinstance(kind, str) or not _is_resource_type(kind):
            issues.append(
                _issue(
                    "Each entry's resource must have the resourceType of a FHIR R4 resource",
                    f"Bundle.entry[{index}].resource.resourceType",
                )
            )
    if issues:
        raise _profile_violation(issues)


@lru_cache(maxsize=256)
def _is_resource_type(name: str) -> bool:
    try:
        get_fhir_model_class(name)
    except ValueError:
        return False
    return name[:1].isupper()


def _ods_of(reference: object) -> str | None:
    if not isinstance(reference, dict):
        return None
    identifier = reference.get("identifier")
    if not isinstance(identifier, dict) or identifier.get("system") != ODS_SYSTEM:
        return None
    value = identifier.get("value")
    return value if is_ods_code(value) else None


def _issue(text: str, expression: str) -> Issue:
    return Issue(Code.PROFILE_VIOLATION, text, expression)


def _profile_violation(issues: list[Issue]) -> HandoverError:
    first, *rest = issues
    return HandoverError(first.code, first.text, first.expression, more=rest)


def _issue_from_pydantic(error: Any) -> Issue:
    """Turn a pydantic error into an issue with a FHIRPath-like expression; its input value is never quoted."""
    path = "Bundle"
    for part in error.get("loc", ()):
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return _issue(f"{path}: {error.get('msg', 'invalid value')}", path)
