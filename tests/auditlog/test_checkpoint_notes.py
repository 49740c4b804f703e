"""Checkpoints as C2SP signed notes: the format by the specification, and T7 key rotation."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from service.identity.keystore import generate_private_jwk, rotate_key
from service.identity.notes import CheckpointError, NoteSigner, hub_note_keys, log_origin, note_key, verify_checkpoint
from service.identity.registry import load_registry
from tests.support.hub import Network

ROOT = hashlib.sha256(b"a root").digest()


def _public_key(jwk: dict[str, str]) -> ec.EllipticCurvePublicKey:
    numbers = ec.EllipticCurvePublicNumbers(
        int.from_bytes(base64.urlsafe_b64decode(jwk["x"] + "="), "big"),
        int.from_bytes(base64.urlsafe_b64decode(jwk["y"] + "="), "big"),
        ec.SECP256R1(),
    )
    return numbers.public_key()


def test_note_is_origin_size_root_blank_line_and_an_ecdsa_signature_line_as_the_spec_says() -> None:
    private = generate_private_jwk()
    note = NoteSigner(private, "handover.nhs.example/audit/test").sign(42, ROOT)
    text, _, signatures = note.partition("\n\n")
    assert text.split("\n") == ["handover.nhs.example/audit/test", "42", base64.b64encode(ROOT).decode()]
    lines = signatures.split("\n")
    assert lines[1:] == [""] and note.endswith("\n")
    dash, name, encoded = lines[0].split(" ")
    assert dash == "\u2014" and name == "handover.nhs.example/audit/test"
    raw = base64.b64decode(encoded, validate=True)
    # Signature type 0x02 (transparency-dev/witness ECDSA): key ID = SHA-256(DER SPKI)[:4], DER ECDSA over SHA-256.
    public = _public_key(private)
    spki = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert raw[:4] == hashlib.sha256(spki).digest()[:4]
    public.verify(raw[4:], (text + "\n").encode(), ec.ECDSA(hashes.SHA256()))  # raises if not


def test_ed25519_key_ids_follow_signed_note_type_1() -> None:
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(bytes(32)).decode().rstrip("=")}
    key = note_key("example.com/log", jwk)
    expected = hashlib.sha256(b"example.com/log\n\x01" + bytes(32)).digest()[:4]
    assert (key.sig_type, key.key_id) == (1, expected)


def test_verified_checkpoint_gives_origin_size_root_and_signer(network: Network) -> None:
    origin = log_origin(network.registry.network)
    note = NoteSigner(network.private_key("hub"), origin).sign(7, ROOT)
    checkpoint = verify_checkpoint(note, hub_note_keys(origin, network.registry.hub_keys))
    assert (checkpoint.origin, checkpoint.tree_size, checkpoint.root_hash) == (origin, 7, ROOT)
    assert checkpoint.signed_by == (network.registry.active_hub_key().kid,)


def test_changed_text_or_signature_is_refused(network: Network) -> None:
    origin = log_origin(network.registry.network)
    keys = hub_note_keys(origin, network.registry.hub_keys)
    note = NoteSigner(network.private_key("hub"), origin).sign(7, ROOT)
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_checkpoint(note.replace("\n7\n", "\n8\n"), keys)
    line = note.rsplit(" ", 1)[1]
    raw = bytearray(base64.b64decode(line))
    raw[-1] ^= 1
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_checkpoint(note.replace(line, base64.b64encode(bytes(raw)).decode() + "\n"), keys)


def test_a_note_without_a_known_key_or_malformed_is_refused(network: Network) -> None:
    origin = log_origin(network.registry.network)
    keys = hub_note_keys(origin, network.registry.hub_keys)
    stranger = NoteSigner(generate_private_jwk(), origin).sign(7, ROOT)
    with pytest.raises(CheckpointError, match="no signature by a known hub key"):
        verify_checkpoint(stranger, keys)
    genuine = NoteSigner(network.private_key("hub"), origin).sign(7, ROOT)
    for broken in (
        genuine.replace("\n\n", "\n"),
        genuine.rstrip("\n"),
        genuine.replace("\u2014", "-"),
        genuine.replace("\n7\n", "\n07\n"),
        "\x07" + genuine,
    ):
        with pytest.raises(CheckpointError):
            verify_checkpoint(broken, keys)


def test_t7_unknown_signature_lines_are_ignored(network: Network) -> None:
    origin = log_origin(network.registry.network)
    keys = hub_note_keys(origin, network.registry.hub_keys)
    note = NoteSigner(network.private_key("hub"), origin).sign(9, ROOT)
    witness = NoteSigner(generate_private_jwk(), "witness.example/w1").sign(9, ROOT).split("\n\n")[1]
    same_name_other_key = NoteSigner(generate_private_jwk(), origin).sign(9, ROOT).split("\n\n")[1]
    opaque = "\u2014 other.example/log " + base64.b64encode(bytes([255] * 40)).decode() + "\n"
    for extra in (witness, same_name_other_key, opaque):
        assert verify_checkpoint(note + extra, keys).tree_size == 9
        assert verify_checkpoint(note.replace("\n\n", "\n\n" + extra), keys).tree_size == 9


def test_t7_old_checkpoints_still_verify_with_the_retired_key_after_rotation(tmp_path: Path) -> None:
    network = Network.create(tmp_path / "net")
    origin = log_origin(network.registry.network)
    old_note = NoteSigner(network.private_key("hub"), origin).sign(3, ROOT)
    old_kid = network.registry.active_hub_key().kid

    rotate_key(network.network_path, network.keys_dir, "hub")
    rotated = load_registry(network.network_path)
    new_note = NoteSigner(network.private_key("hub"), origin).sign(5, ROOT)
    keys = hub_note_keys(origin, rotated.hub_keys)

    assert rotated.hub_key(old_kid) is not None and rotated.hub_key(old_kid).status == "retiring"  # type: ignore[union-attr]
    assert verify_checkpoint(old_note, keys).signed_by == (old_kid,)
    assert verify_checkpoint(new_note, keys).signed_by == (rotated.active_hub_key().kid,)
    # A verifier that knows only the new key ignores the old signature, so the old note has no known signer.
    only_new = {k: v for k, v in keys.items() if v[1].kid != old_kid}
    with pytest.raises(CheckpointError, match="no signature by a known hub key"):
        verify_checkpoint(old_note, only_new)


def test_origin_is_a_schema_less_url_without_spaces_or_plus() -> None:
    assert log_origin("east-anglia-liver-mets") == "handover.nhs.example/audit/east-anglia-liver-mets"
    assert log_origin("a b+c") == "handover.nhs.example/audit/a-b-c"
    assert log_origin("") == "handover.nhs.example/audit"
