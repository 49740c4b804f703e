"""One parsed message (issue 28 item 1): intake reads a message once into an InboundMessage, and the validator,
the national (BaRS) mapping and the episode reader all read its one index; none indexes the Bundle again."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from service.episodes.cwt_reading import focus_of, read_cwt_items
from service.episodes.reading import read_episode_message
from service.errors import Code, HandoverError
from service.identity.keystore import generate_private_jwk
from service.identity.signing import PublicKeyEntry, sign_bundle
from service.intake import InboundMessage, read_inbound
from service.terminology import PROFILES_DIR, load_code_system
from service.validation import bundle as bundle_module
from service.validation import load_validator
from tests.support.messages import referral

AT = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def example(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((PROFILES_DIR / "examples" / f"Bundle-{name}.json").read_text(encoding="utf-8"))
    return doc


def signed(doc: dict[str, Any], ods: str) -> tuple[bytes, PublicKeyEntry]:
    private = generate_private_jwk()
    public = {k: v for k, v in private.items() if k != "d"}
    entry = PublicKeyEntry(public["kid"], public["alg"], ods, "active", None, public)
    return json.dumps(sign_bundle(doc, private, ods, when=AT)).encode(), entry


def read(body: bytes, entry: PublicKeyEntry) -> InboundMessage:
    conformance = load_validator().conformance
    return read_inbound(body, {entry.kid: entry}.get, conformance, load_code_system("handover-event"))


@pytest.fixture
def indexings(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every BundleIndex built while the test runs."""
    built: list[object] = []
    original = bundle_module.BundleIndex.__init__

    def counting(self: bundle_module.BundleIndex, doc: object) -> None:
        built.append(doc)
        original(self, doc)

    monkeypatch.setattr(bundle_module.BundleIndex, "__init__", counting)
    return built


@pytest.mark.parametrize(("name", "sender"), [("referral", "RM1"), ("bars-servicerequest-request", "RM1")])
def test_a_message_is_indexed_once_for_every_step_that_reads_it(
    indexings: list[object], name: str, sender: str
) -> None:
    doc = referral() if name == "referral" else example(name)
    body, entry = signed(doc, sender)
    inbound = read(body, entry)
    assert inbound.facts.event == "referral"
    assert inbound.facts.sender_ods == sender  # a BaRS message: read off its Organization entry, through the index
    assert [i for i in load_validator().validate(inbound.doc, inbound.index) if i.severity == "error"] == []
    said = read_episode_message(
        inbound, event="referral", message_id="m", sender=sender, recipient=inbound.facts.recipient_ods, at=AT
    )
    read_cwt_items(inbound.index, "referral", focus_of(inbound.header, inbound.index))
    assert said.nhs_number == (inbound.patient.nhs_number if inbound.patient else None)
    assert indexings == [inbound.doc]  # one index, of the document as signed


def test_the_validator_still_indexes_a_document_given_alone(indexings: list[object]) -> None:
    doc = referral()
    load_validator().validate(doc)
    assert indexings == [doc]


def test_the_patient_is_read_once_and_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from service.intake import message as message_module

    calls: list[object] = []
    original = message_module.read_patient_identity

    def counting(doc: dict[str, Any]) -> Any:
        calls.append(doc)
        return original(doc)

    monkeypatch.setattr(message_module, "read_patient_identity", counting)
    body, entry = signed(referral(), "RM1")
    inbound = read(body, entry)
    assert calls == []  # a message refused before its patient is read (a wrong signer) is refused for that
    first, second = inbound.patient, inbound.patient
    assert first is second and first is not None and len(calls) == 1


def test_a_body_that_is_not_strict_json_is_refused_before_anything_is_read() -> None:
    _, entry = signed(referral(), "RM1")
    with pytest.raises(HandoverError) as refused:
        read(b'{"resourceType": "Bundle", "resourceType": "Bundle"}', entry)
    assert refused.value.code is not Code.PROFILE_VIOLATION
