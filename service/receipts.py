"""The hub-signed receipt returned with 202: a response message whose focus is a Parameters resource.

It promises that the message, its audit entry and its delivery job were committed: message id, SHA-256 of
the canonical payload, the audit log index and leaf hash, and the acceptance time; for a cancer pathway referral,
also the `ipt-received-date` (CONTRACT section 9), so both trusts hold the same signed date. It is signed with the
hub key in the same detached-JWS format as trust messages, so a trust can keep it as proof.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from service.hubmessages import hub_header, new_uuids, signed_hub_message
from service.strictjson import MAX_SAFE_INTEGER


@dataclass(frozen=True)
class ReceiptFacts:
    message_id: UUID
    payload_sha256: str
    audit_index: int
    leaf_hash: bytes
    accepted_at: datetime
    sender_ods: str
    request_header_id: str
    bundle_identifier: str
    ipt_received_date: date | None = None


def build_signed_receipt(facts: ReceiptFacts, event_system: str, hub_private_jwk: Mapping[str, Any]) -> bytes:
    """The receipt as the exact bytes to return now and again on a retry with the same X-Request-ID."""
    accepted_at = facts.accepted_at.isoformat(timespec="microseconds").replace("+00:00", "Z")
    parameter: list[dict[str, Any]] = [
        {"name": "message-id", "valueString": str(facts.message_id)},
        {"name": "bundle-identifier", "valueUri": facts.bundle_identifier},
        {"name": "sha256", "valueString": facts.payload_sha256},
        {"name": "audit-index", "valueInteger": facts.audit_index},
        {"name": "leaf-hash", "valueBase64Binary": base64.b64encode(facts.leaf_hash).decode("ascii")},
        {"name": "accepted-at", "valueInstant": accepted_at},
    ]
    if facts.ipt_received_date is not None:
        parameter.append({"name": "ipt-received-date", "valueDate": facts.ipt_received_date.isoformat()})
    parameters_id, header_id, bundle_id, identifier = new_uuids(4)
    parameters = {"resourceType": "Parameters", "id": parameters_id, "parameter": parameter}
    header = hub_header(
        event_system=event_system,
        event="acknowledgement",
        to_ods=facts.sender_ods,
        response={"identifier": facts.request_header_id, "code": "ok"},
        focus=[f"urn:uuid:{parameters['id']}"],
        header_id=header_id,
    )
    _, raw = signed_hub_message(
        [header, parameters],
        at=facts.accepted_at,
        hub_private_jwk=hub_private_jwk,
        plain=_plain_facts(facts, event_system),
        ids=(bundle_id, identifier),
    )
    return raw


def _plain_facts(facts: ReceiptFacts, event_system: str) -> bool:
    """Whether the receipt is plain for `canonical_json_of_plain`: everything else in it is a `str` made here."""
    texts = (facts.payload_sha256, facts.sender_ods, facts.request_header_id, facts.bundle_identifier, event_system)
    return (
        all(type(text) is str for text in texts)
        and type(facts.audit_index) is int
        and 0 <= facts.audit_index <= MAX_SAFE_INTEGER
    )


def receipt_parameters(receipt: Mapping[str, Any]) -> dict[str, Any]:
    """The Parameters of a receipt as {name: value}; raises KeyError/IndexError if it is not one."""
    params = receipt["entry"][1]["resource"]["parameter"]
    return {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in params}
