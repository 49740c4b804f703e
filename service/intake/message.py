"""One inbound message, read once: the raw bytes, the strict document, its one index, its facts, its signature.

`read_inbound` parses the body strictly, verifies the signature (before any FHIR model sees the bytes), indexes
the Bundle's entries and references once (`BundleIndex`), maps a national (BaRS) message to the Handover form it
is handled as and reads the routing facts. The validator, the national-form mapping and the episode tracker are
all handed this one object's index; none indexes the Bundle again. The patient is read once, on first use, so a
message refused earlier (a wrong signer, a stale timestamp) is refused for that, as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from service.episodes.patient import PatientIdentity, read_patient_identity
from service.identity.signing import KeyLookup, VerifiedSignature, verify_bundle_signature
from service.messagefacts import MessageFacts, read_message_facts
from service.strictjson import parse_strict_json
from service.terminology import CodeSystem
from service.validation.bundle import BundleIndex
from service.validation.loader import Conformance
from service.validation.national import in_handover_form


@dataclass(frozen=True)
class InboundMessage:
    """A message as intake holds it from its strict parse to its commit."""

    body: bytes
    """The bytes as received: what was signed, and what is sealed, stored and delivered."""
    doc: dict[str, Any]
    """The strict parse of `body` (never changed)."""
    index: BundleIndex
    """The one index of `doc`'s entries and references."""
    handover_form: dict[str, Any]
    """`doc` itself, or for an accepted BaRS message a copy naming the Handover event and the parties' ODS codes."""
    facts: MessageFacts
    signature: VerifiedSignature

    @property
    def header(self) -> dict[str, Any]:
        """The MessageHeader in Handover form (read_message_facts has checked that entry 0 is one)."""
        header: dict[str, Any] = self.handover_form["entry"][0]["resource"]
        return header

    @cached_property
    def patient(self) -> PatientIdentity | None:
        """The one patient the message names (None if none), or HandoverError `patient-mismatch`."""
        return read_patient_identity(self.handover_form)


def read_inbound(body: bytes, keys: KeyLookup, conformance: Conformance, events: CodeSystem) -> InboundMessage:
    """Parse, verify and read `body` once, or raise the HandoverError that refuses it."""
    doc = parse_strict_json(body)
    signature = verify_bundle_signature(doc, keys)
    index = BundleIndex(doc)
    handover_form = in_handover_form(doc, conformance, index)  # a BaRS message mapped to ours
    facts = read_message_facts(handover_form, events)
    return InboundMessage(body, doc, index, handover_form, facts, signature)
