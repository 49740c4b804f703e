"""The hub-signed receipt returned with 202: a response message whose focus is a Parameters resource.

It promises that the message, its audit entry and its delivery job were committed: message id, SHA-256 of
the canonical payload, the audit log index and leaf hash, and the acceptance time. It is signed with the
hub key in the same detached-JWS format as trust messages, so a trust can keep it as proof.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from service.signing import sign_bundle
from service.terminology import ODS_SYSTEM, RFC3986_SYSTEM

HUB_IDENTIFIER_SYSTEM = "https://handover.nhs.example/fhir/Id/hub"


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


def build_signed_receipt(facts: ReceiptFacts, event_system: str, hub_private_jwk: Mapping[str, Any]) -> bytes:
    """The receipt as the exact bytes to return now and again on a retry with the same X-Request-ID."""
    header_id, params_id = str(uuid.uuid4()), str(uuid.uuid4())
    accepted_at = facts.accepted_at.isoformat(timespec="microseconds").replace("+00:00", "Z")
    parameters = {
        "resourceType": "Parameters",
        "id": params_id,
        "parameter": [
            {"name": "message-id", "valueString": str(facts.message_id)},
            {"name": "bundle-identifier", "valueUri": facts.bundle_identifier},
            {"name": "sha256", "valueString": facts.payload_sha256},
            {"name": "audit-index", "valueInteger": facts.audit_index},
            {"name": "leaf-hash", "valueBase64Binary": base64.b64encode(facts.leaf_hash).decode("ascii")},
            {"name": "accepted-at", "valueInstant": accepted_at},
        ],
    }
    header = {
        "resourceType": "MessageHeader",
        "id": header_id,
        "eventCoding": {"system": event_system, "code": "acknowledgement"},
        "destination": [
            {
                "endpoint": f"urn:ods:{facts.sender_ods}",
                "receiver": {"identifier": {"system": ODS_SYSTEM, "value": facts.sender_ods}},
            }
        ],
        "source": {"endpoint": "urn:handover:hub", "software": "Handover"},
        "response": {"identifier": facts.request_header_id, "code": "ok"},
        "focus": [{"reference": f"urn:uuid:{params_id}"}],
    }
    bundle = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "message",
        "identifier": {"system": RFC3986_SYSTEM, "value": f"urn:uuid:{uuid.uuid4()}"},
        "timestamp": accepted_at,
        "entry": [
            {"fullUrl": f"urn:uuid:{header_id}", "resource": header},
            {"fullUrl": f"urn:uuid:{params_id}", "resource": parameters},
        ],
    }
    signed = sign_bundle(bundle, hub_private_jwk, "hub", when=facts.accepted_at)
    # `who` is outside the signed payload; the hub has no ODS code, so name it by its own identifier.
    signed["signature"]["who"] = {
        "identifier": {"system": HUB_IDENTIFIER_SYSTEM, "value": "hub"},
        "display": "Handover hub",
    }
    return json.dumps(signed, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def receipt_parameters(receipt: Mapping[str, Any]) -> dict[str, Any]:
    """The Parameters of a receipt as {name: value}; raises KeyError/IndexError if it is not one."""
    params = receipt["entry"][1]["resource"]["parameter"]
    return {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in params}
