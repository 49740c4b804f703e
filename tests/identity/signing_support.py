"""What the signing tests share (tests/identity/test_signing.py, test_signing_refusals.py): keys, a sample
Bundle, a recording key lookup, forgeries, and a verifier built only from the independent conformance signer."""

from __future__ import annotations

import base64
import copy
import json
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from joserfc import jwk

from service.identity.signing import (
    PublicKeyEntry,
    canonical_bytes,
    thumbprint,
)

ROOT = Path(__file__).resolve().parents[2]
CONFORMANCE_DIR = Path(os.environ.get("HANDOVER_CONFORMANCE_DIR", ROOT.parent / "shared" / "conformance"))
WHEN = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)
KID_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")


# ---------------------------------------------------------------- keys, bundles and a recording key lookup


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def ec_private_jwk() -> dict[str, Any]:
    raw = jwk.ECKey.generate_key("P-256", private=True).as_dict(private=True)
    key = {name: raw[name] for name in ("kty", "crv", "x", "y", "d")}
    return {**key, "kid": thumbprint(key), "alg": "ES256"}


def ed_private_jwk() -> dict[str, Any]:
    raw = jwk.OKPKey.generate_key("Ed25519", private=True).as_dict(private=True)
    key = {name: raw[name] for name in ("kty", "crv", "x", "d")}
    return {**key, "kid": thumbprint(key), "alg": "Ed25519"}


def entry_for(private: dict[str, Any], owner: str, status: str = "active") -> PublicKeyEntry:
    public = {k: v for k, v in private.items() if k != "d"}
    return PublicKeyEntry(public["kid"], public["alg"], owner, status, None, public)


class RecordingLookup:
    """An in-memory KeyLookup that remembers every kid it was asked for."""

    def __init__(self, *entries: PublicKeyEntry) -> None:
        self.entries = {e.kid: e for e in entries}
        self.calls: list[object] = []

    def __call__(self, kid: str) -> PublicKeyEntry | None:
        self.calls.append(kid)
        return self.entries.get(kid)


def sample_bundle() -> dict[str, Any]:
    ods = "https://fhir.nhs.uk/Id/ods-organization-code"
    return {
        "resourceType": "Bundle",
        "id": "3f1c8a52-5d0e-4f4e-9a51-0c9f7f2b8d11",
        "type": "message",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:7b0e3c39-1a57-4d37-bb4a-2d9b8f0f6c21"},
        "timestamp": "2026-11-24T09:30:00+00:00",
        "entry": [
            {
                "fullUrl": "urn:uuid:2d0f4c55-8c1d-4c0b-9d4f-5b3f5e6a7c88",
                "resource": {
                    "resourceType": "MessageHeader",
                    "eventCoding": {"system": "https://example.org/handover-event", "code": "referral"},
                    "sender": {"identifier": {"system": ods, "value": "RM1"}},
                    "destination": [
                        {"endpoint": "urn:ods:RGT", "receiver": {"identifier": {"system": ods, "value": "RGT"}}}
                    ],
                },
            },
            {
                "fullUrl": "urn:uuid:9e6f1b0a-3c2d-4e5f-8a7b-6c5d4e3f2a1b",
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "valueQuantity": {"value": 1, "unit": "cm"},
                    "note": [{"text": "Lésion segment VII — 12 mm, \u00e9chographie"}],
                },
            },
        ],
    }


def with_data(bundle: dict[str, Any], data: Any, **fields: Any) -> dict[str, Any]:
    """`bundle` with a contract-shaped signature element carrying `data` (and overrides)."""
    out = copy.deepcopy(bundle)
    out["signature"] = {
        "type": [{"system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.5"}],
        "when": "2026-11-24T10:00:00Z",
        "who": {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "RM1"}},
        "sigFormat": "application/jose",
        "data": data,
        **fields,
    }
    return out


def es256_raw(private: dict[str, Any], message: bytes) -> bytes:
    r, s = decode_dss_signature(ec_key(private).sign(message, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def es256_der(private: dict[str, Any], message: bytes) -> bytes:
    return ec_key(private).sign(message, ec.ECDSA(hashes.SHA256()))


def ed25519_sign(private: dict[str, Any], message: bytes) -> bytes:
    return ed25519.Ed25519PrivateKey.from_private_bytes(unb64u(private["d"])).sign(message)


def ec_key(private: dict[str, Any]) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(unb64u(private["d"]), "big"), ec.SECP256R1())


def forge(
    bundle: dict[str, Any],
    header: dict[str, Any] | bytes,
    signer: Callable[[bytes], bytes],
    *,
    payload: bytes | None = None,
    attach: bool = False,
) -> dict[str, Any]:
    """Sign `bundle` by hand with any header (dict, or raw JSON bytes) and any signing function."""
    header_b64 = b64u(header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode())
    body = canonical_bytes(bundle) if payload is None else payload
    signing_input = f"{header_b64}.{b64u(body)}".encode()
    compact = f"{header_b64}.{b64u(body) if attach else ''}.{b64u(signer(signing_input))}"
    return with_data(bundle, base64.b64encode(compact.encode()).decode())


def detached_parts(signed: dict[str, Any]) -> tuple[str, str, str]:
    header_b64, payload_b64, signature_b64 = base64.b64decode(signed["signature"]["data"]).decode().split(".")
    return header_b64, payload_b64, signature_b64


def independent_verify(hosign: ModuleType, bundle: dict[str, Any], public: dict[str, Any]) -> dict[str, Any]:
    """Verify `bundle` with only hosign.canonical and cryptography, as a trust's own verifier would."""
    header_b64, payload_b64, signature_b64 = (
        base64.b64decode(bundle["signature"]["data"], validate=True).decode().split(".")
    )
    assert payload_b64 == ""
    header: dict[str, Any] = json.loads(hosign.unb64u(header_b64))
    signing_input = header_b64.encode() + b"." + hosign.b64u(hosign.canonical(bundle)).encode()
    signature = hosign.unb64u(signature_b64)
    if public["kty"] == "EC":
        assert header["alg"] == "ES256" and len(signature) == 64
        numbers = ec.EllipticCurvePublicNumbers(
            int.from_bytes(hosign.unb64u(public["x"]), "big"),
            int.from_bytes(hosign.unb64u(public["y"]), "big"),
            ec.SECP256R1(),
        )
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        numbers.public_key().verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    else:
        assert header["alg"] == "Ed25519"
        ed25519.Ed25519PublicKey.from_public_bytes(hosign.unb64u(public["x"])).verify(signature, signing_input)
    return header
