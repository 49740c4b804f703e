"""Envelope encryption of one payload: a fresh random AES-256-GCM data key and a 96-bit random nonce per payload,
with the payload's identity bound in as additional authenticated data (AAD).

The AAD is ``version ‖ message id ‖ sender ‖ recipient`` (length-prefixed, so no two identities encode alike):
ciphertext moved to another row, or a row whose sender or recipient was edited, fails authentication. One key
encrypts exactly one payload, far below the SP 800-38D limit of 2^32 encryptions per key. Pure functions only;
wrapping the data key under the key-encryption key is `service.crypto.kek`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

AAD_VERSION = 1
DATA_KEY_BYTES = 32
NONCE_BYTES = 12


class PayloadUnreadableError(Exception):
    """A stored payload failed authentication: wrong key, moved or altered ciphertext, or edited identity."""


@dataclass(frozen=True)
class PayloadIdentity:
    """What a payload is bound to: its message id, sender and recipient (ODS codes, or ``hub``)."""

    message_id: UUID
    sender: str
    recipient: str


@dataclass(frozen=True)
class EncryptedBlob:
    """AES-256-GCM output (ciphertext ‖ 16-byte tag), its nonce, and the AAD format version used."""

    ciphertext: bytes
    nonce: bytes
    aad_version: int = AAD_VERSION


def payload_aad(identity: PayloadIdentity, version: int = AAD_VERSION) -> bytes:
    """The additional authenticated data for `identity` in AAD format `version` (only 1 exists)."""
    if version != 1:
        raise PayloadUnreadableError(f"unknown AAD version {version}")
    parts = [identity.sender.encode("ascii"), identity.recipient.encode("ascii")]
    if any(len(part) > 255 for part in parts):
        raise ValueError("sender and recipient must be at most 255 ASCII characters")
    encoded = b"".join(len(part).to_bytes(1, "big") + part for part in parts)
    return b"handover-payload" + version.to_bytes(1, "big") + identity.message_id.bytes + encoded


def new_data_key() -> bytes:
    """A fresh random 256-bit data key (used for one payload only)."""
    return AESGCM.generate_key(bit_length=256)


def encrypt_payload(
    plaintext: bytes, identity: PayloadIdentity, data_key: bytes, *, nonce: bytes | None = None
) -> EncryptedBlob:
    """Encrypt `plaintext` under `data_key` with the identity as AAD and a random 96-bit nonce (or `nonce`, which
    must be fresh random bytes of that length: never reuse one under the same key)."""
    nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
    ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, payload_aad(identity))
    return EncryptedBlob(ciphertext, nonce)


def encrypt_new_payload(plaintext: bytes, identity: PayloadIdentity) -> tuple[bytes, EncryptedBlob]:
    """`encrypt_payload` under a fresh random data key, returned with the blob: the key and the nonce come from one
    read of the operating system's random source (`os.urandom`) instead of two draws."""
    random = os.urandom(DATA_KEY_BYTES + NONCE_BYTES)
    data_key, nonce = random[:DATA_KEY_BYTES], random[DATA_KEY_BYTES:]
    return data_key, encrypt_payload(plaintext, identity, data_key, nonce=nonce)


def decrypt_payload(blob: EncryptedBlob, identity: PayloadIdentity, data_key: bytes) -> bytes:
    """The plaintext, or PayloadUnreadableError if the key, nonce, ciphertext or identity do not match."""
    if len(data_key) != DATA_KEY_BYTES or len(blob.nonce) != NONCE_BYTES:
        raise PayloadUnreadableError("the data key or nonce has the wrong length")
    try:
        return AESGCM(data_key).decrypt(blob.nonce, blob.ciphertext, payload_aad(identity, blob.aad_version))
    except InvalidTag:
        raise PayloadUnreadableError("the stored payload failed authentication") from None
