"""`handover verify FILE` (adapters/verify.py): offline verification of signed messages and hub receipts."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from adapters.verify import VerifyReport, render_report, verify_file
from service.identity.registry import Registry
from service.identity.signing import payload_sha256, sign_bundle
from service.receipts import ReceiptFacts, build_signed_receipt
from tests.support.hub import EVENT_SYSTEM, Network
from tests.support.messages import referral

VECTORS = Path(__file__).resolve().parents[2] / "fhir_profiles" / "signing-vectors"


def write(tmp_path: Path, bundle: dict[str, Any] | bytes, name: str = "message.json") -> Path:
    path = tmp_path / name
    path.write_bytes(bundle if isinstance(bundle, bytes) else json.dumps(bundle, ensure_ascii=False).encode())
    return path


def signed_by(network: Network, owner: str, bundle: dict[str, Any], when: datetime | None = None) -> dict[str, Any]:
    return sign_bundle(bundle, network.private_key(owner), owner, when=when)


def with_participant(registry: Registry, ods: str, **changes: Any) -> Registry:
    participants = dict(registry.participants)
    participants[ods] = replace(participants[ods], **changes)
    return Registry(participants, registry.hub_keys, registry.network, registry.hub_name)


def rendered(report: VerifyReport) -> str:
    console = Console(record=True, width=240)
    console.print(render_report(report))
    return console.export_text()


def test_message_signed_by_its_sender_verifies_and_reports_key_signer_and_digest(
    network: Network, tmp_path: Path
) -> None:
    bundle = referral("RM1", "RGT")
    report = verify_file(write(tmp_path, signed_by(network, "RM1", bundle)), network.registry)
    assert report.valid, report.problems
    rm1_key = network.registry.participants["RM1"].keys[-1]
    assert (report.kid, report.alg, report.signer, report.key_status) == (rm1_key.kid, "ES256", "RM1", "active")
    assert report.signer_name == network.registry.participants["RM1"].name
    assert report.sha256 == payload_sha256(bundle)
    assert (report.event, report.sender, report.recipient) == ("referral", "RM1", "RGT")
    assert report.bundle_identifier == bundle["identifier"]["value"]
    assert report.receipt is None and report.error_code is None
    text = rendered(report)
    assert "VALID" in text and "INVALID" not in text and report.sha256 in text and rm1_key.kid in text


def test_hub_receipt_verifies_and_reports_its_parameters(network: Network, tmp_path: Path) -> None:
    sent = signed_by(network, "RM1", referral())
    facts = ReceiptFacts(
        message_id=uuid.uuid4(),
        payload_sha256=payload_sha256(sent),
        audit_index=7,
        leaf_hash=bytes(range(32)),
        accepted_at=datetime.now(UTC),
        sender_ods="RM1",
        request_header_id=sent["entry"][0]["resource"]["id"],
        bundle_identifier=sent["identifier"]["value"],
    )
    receipt = build_signed_receipt(facts, EVENT_SYSTEM, network.private_key("hub"))
    report = verify_file(write(tmp_path, receipt, "receipt.json"), network.registry)
    assert report.valid, report.problems
    assert report.signer == "hub" and report.is_receipt and report.receipt is not None
    assert report.receipt["sha256"] == payload_sha256(sent)
    assert report.receipt["audit-index"] == 7
    assert report.receipt["message-id"] == str(facts.message_id)
    assert (report.event, report.sender, report.recipient) == ("acknowledgement", None, "RM1")
    assert "receipt sha256" in rendered(report)


def test_tampered_message_is_invalid_with_the_signature_error(network: Network, tmp_path: Path) -> None:
    signed = signed_by(network, "RM1", referral())
    signed["timestamp"] = "2020-01-01T00:00:00Z"
    report = verify_file(write(tmp_path, signed), network.registry)
    assert not report.valid and report.error_code == "signature-invalid"
    assert "INVALID" in rendered(report)


def test_key_not_owning_the_sender_is_a_sender_mismatch(network: Network, tmp_path: Path) -> None:
    report = verify_file(write(tmp_path, signed_by(network, "RM1", referral("RDE", "RGT"))), network.registry)
    assert not report.valid and report.error_code == "sender-mismatch"
    assert report.signer == "RM1" and report.sender == "RDE"
    assert any("MessageHeader.sender is RDE" in problem for problem in report.problems)


def test_signature_who_must_be_the_key_owner(network: Network, tmp_path: Path) -> None:
    signed = signed_by(network, "RM1", referral())
    signed["signature"]["who"]["identifier"]["value"] = "RDE"  # outside the signed payload
    report = verify_file(write(tmp_path, signed), network.registry)
    assert not report.valid and report.error_code == "sender-mismatch"


def test_hub_key_cannot_sign_a_message_with_a_trust_sender(network: Network, tmp_path: Path) -> None:
    report = verify_file(write(tmp_path, signed_by(network, "hub", referral())), network.registry)
    assert not report.valid and report.signer == "hub" and report.error_code == "sender-mismatch"


def test_key_revoked_before_signing_is_invalid_and_after_signing_is_valid_with_a_note(
    network: Network, tmp_path: Path
) -> None:
    signed_at = datetime.now(UTC).replace(microsecond=0)
    path = write(tmp_path, signed_by(network, "RM1", referral(), when=signed_at))
    keys = network.registry.participants["RM1"].keys

    def revoked_at(moment: datetime) -> Registry:
        revoked = tuple(replace(key, status="revoked", revoked_at=moment) for key in keys)
        return with_participant(network.registry, "RM1", keys=revoked)

    before = verify_file(path, revoked_at(signed_at - timedelta(hours=1)))
    assert not before.valid and before.error_code == "key-revoked"
    after = verify_file(path, revoked_at(signed_at + timedelta(hours=1)))
    assert after.valid and after.key_status == "revoked"
    assert any("now revoked" in note for note in after.notes)


def test_message_of_a_former_participant_still_verifies_with_a_note(network: Network, tmp_path: Path) -> None:
    path = write(tmp_path, signed_by(network, "RM1", referral()))
    report = verify_file(path, with_participant(network.registry, "RM1", active=False))
    assert report.valid, report.problems
    assert any("former participant" in note for note in report.notes)


def test_unregistered_key_is_unknown_key(network: Network) -> None:
    report = verify_file(VECTORS / "signed-es256.json", network.registry)
    assert not report.valid and report.error_code == "unknown-key"
    assert report.sha256 == (VECTORS / "canonical.sha256").read_text().strip()
    assert report.sender == "RM1" and report.event == "referral"


def test_unsigned_message_is_signature_missing(network: Network, tmp_path: Path) -> None:
    report = verify_file(write(tmp_path, referral()), network.registry)
    assert not report.valid and report.error_code == "signature-missing"


def test_file_that_is_not_strict_json_or_missing_is_invalid(network: Network, tmp_path: Path) -> None:
    duplicate = verify_file(write(tmp_path, b'{"resourceType": "Bundle", "id": "a", "id": "b"}'), network.registry)
    assert not duplicate.valid and duplicate.error_code == "invalid-json"
    missing = verify_file(tmp_path / "absent.json", network.registry)
    assert not missing.valid and missing.problems[0].startswith("cannot read the file")
    assert "INVALID" in rendered(missing)


def test_a_signed_resource_that_is_not_a_message_is_invalid(network: Network, tmp_path: Path) -> None:
    document = {"resourceType": "Bundle", "type": "collection", "entry": []}
    report = verify_file(write(tmp_path, signed_by(network, "RM1", document)), network.registry)
    assert not report.valid
    assert any("not a FHIR message Bundle" in problem for problem in report.problems)
