"""Per-payload envelope encryption: AES-256-GCM, a fresh key and 96-bit nonce each time, identity bound as AAD."""

from __future__ import annotations

import uuid

import pytest

from service.crypto.envelope import (
    AAD_VERSION,
    DATA_KEY_BYTES,
    NONCE_BYTES,
    EncryptedBlob,
    PayloadIdentity,
    PayloadUnreadableError,
    decrypt_payload,
    encrypt_new_payload,
    encrypt_payload,
    new_data_key,
    payload_aad,
)

IDENTITY = PayloadIdentity(uuid.uuid4(), "RM1", "RGT")
PLAINTEXT = b'{"resourceType":"Bundle","note":"synthetic"}'


def test_round_trip_with_a_fresh_key_and_nonce_each_time() -> None:
    keys = [new_data_key() for _ in range(3)]
    blobs = [encrypt_payload(PLAINTEXT, IDENTITY, key) for key in keys]
    assert all(len(key) == DATA_KEY_BYTES for key in keys) and len(set(keys)) == 3
    assert all(len(blob.nonce) == NONCE_BYTES for blob in blobs) and len({b.nonce for b in blobs}) == 3
    assert all(PLAINTEXT not in blob.ciphertext for blob in blobs)
    assert [decrypt_payload(blob, IDENTITY, key) for blob, key in zip(blobs, keys, strict=True)] == [PLAINTEXT] * 3


@pytest.mark.parametrize(
    "other",
    [
        PayloadIdentity(uuid.uuid4(), "RM1", "RGT"),
        PayloadIdentity(IDENTITY.message_id, "RDE", "RGT"),
        PayloadIdentity(IDENTITY.message_id, "RM1", "RGN"),
    ],
    ids=["message-id", "sender", "recipient"],
)
def test_the_identity_is_authenticated(other: PayloadIdentity) -> None:
    key = new_data_key()
    blob = encrypt_payload(PLAINTEXT, IDENTITY, key)
    with pytest.raises(PayloadUnreadableError):
        decrypt_payload(blob, other, key)


def test_altered_ciphertext_nonce_or_key_fail_authentication() -> None:
    key = new_data_key()
    blob = encrypt_payload(PLAINTEXT, IDENTITY, key)
    flipped = bytes([blob.ciphertext[0] ^ 1]) + blob.ciphertext[1:]
    for bad, bad_key in [
        (EncryptedBlob(flipped, blob.nonce), key),
        (EncryptedBlob(blob.ciphertext, bytes(NONCE_BYTES)), key),
        (blob, new_data_key()),
        (EncryptedBlob(blob.ciphertext, blob.nonce, aad_version=2), key),
    ]:
        with pytest.raises(PayloadUnreadableError):
            decrypt_payload(bad, IDENTITY, bad_key)


def test_aad_encodings_cannot_collide() -> None:
    message_id = uuid.uuid4()
    assert payload_aad(PayloadIdentity(message_id, "RM1", "RGT")) != payload_aad(
        PayloadIdentity(message_id, "RM", "1RGT")
    )


def test_a_new_payload_gets_its_own_key_and_nonce_and_opens_as_any_other() -> None:
    sealed = [encrypt_new_payload(PLAINTEXT, IDENTITY) for _ in range(3)]
    keys, blobs = [key for key, _ in sealed], [blob for _, blob in sealed]
    assert all(len(key) == DATA_KEY_BYTES for key in keys) and len(set(keys)) == 3
    assert all(len(blob.nonce) == NONCE_BYTES and blob.aad_version == AAD_VERSION for blob in blobs)
    assert len({blob.nonce for blob in blobs}) == 3
    assert [decrypt_payload(blob, IDENTITY, key) for key, blob in sealed] == [PLAINTEXT] * 3
    assert encrypt_payload(PLAINTEXT, IDENTITY, keys[0]).ciphertext != blobs[0].ciphertext, "a fresh nonce each time"
