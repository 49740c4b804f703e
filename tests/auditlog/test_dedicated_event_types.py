"""A dead letter and a crypto-shred have their own audit event types, and the export codes them as FHIR
AuditEvents of their own (a failed delivery operation; a delete of the stored payload)."""

from __future__ import annotations

import uuid

from fhir.resources.R4B.auditevent import AuditEvent as FhirAuditEvent

from service.auditlog.events import AuditEvent, EventType
from service.auditlog.export import fhir_audit_event
from tests.auditlog.audit_fixtures import T0

DEAD_LETTER = AuditEvent(
    EventType.MESSAGE_DEAD_LETTERED,
    "dead-letter",
    "hub",
    T0,
    uuid.uuid4(),
    {"channel": "none", "recipient": "RGT", "reason": "delivery-window-expired", "attempts": "412"},
)
SHRED = AuditEvent(
    EventType.PAYLOAD_SHREDDED,
    "shredded",
    "hub",
    T0,
    uuid.uuid4(),
    {"owner": "data-key", "change": "shred", "event": "referral", "sender": "RM1", "recipient": "RGT"},
)


def test_the_types_are_their_own_and_not_the_ones_they_used_to_borrow() -> None:
    assert DEAD_LETTER.as_json()["type"] == "message-dead-lettered" != EventType.MESSAGE_DELIVERED.value
    assert SHRED.as_json()["type"] == "payload-shredded" != EventType.KEY_CHANGED.value


def test_a_dead_letter_exports_as_a_failed_delivery_operation() -> None:
    resource = fhir_audit_event(7, DEAD_LETTER.as_json(), b"\x01" * 32, "handover.nhs.example/audit/test")
    FhirAuditEvent.model_validate(resource)
    assert resource["type"]["code"] == "rest" and resource["action"] == "E"
    assert [c["code"] for c in resource["subtype"]] == ["operation", "message-dead-lettered"]
    assert resource["outcome"] == "8" and resource["outcomeDesc"] == "dead-letter"
    details = {d["type"]: d["valueString"] for d in resource["entity"][0]["detail"]}
    assert details["reason"] == "delivery-window-expired" and details["recipient"] == "RGT"


def test_a_crypto_shred_exports_as_a_successful_delete_of_the_payload() -> None:
    resource = fhir_audit_event(8, SHRED.as_json(), b"\x02" * 32, "handover.nhs.example/audit/test")
    FhirAuditEvent.model_validate(resource)
    assert resource["type"]["code"] == "rest" and resource["action"] == "D"
    assert [c["code"] for c in resource["subtype"]] == ["delete", "payload-shredded"]
    assert resource["outcome"] == "0" and resource["outcomeDesc"] == "shredded"
    assert resource["entity"][0]["what"]["identifier"]["value"] == f"urn:uuid:{SHRED.message_id}"
