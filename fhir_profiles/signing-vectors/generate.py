"""Generate the published signing test vectors in this directory (run by hand; see README.md).

    .venv/bin/python fhir_profiles/signing-vectors/generate.py           # write the files
    .venv/bin/python fhir_profiles/signing-vectors/generate.py --check   # exit 1 if any file would change

Everything is deterministic except the ES256 signature (ECDSA signing in `cryptography` is randomised):
the test keys are derived from fixed, published labels; the unsigned Bundle is the fixed text below,
written byte for byte; the Ed25519 signature is deterministic by design (RFC 8032). An existing
``signed-es256.json`` is kept as long as it still verifies over the current canonical bytes with the current
header, so re-running this script changes nothing unless the inputs change.

The keys are PUBLISHED TEST KEYS. They must never be registered in a real network.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from service.errors import HandoverError
from service.identity.signing import PublicKeyEntry, canonical_bytes, sign_bundle, thumbprint, verify_bundle_signature
from service.strictjson import parse_strict_json

HERE = Path(__file__).resolve().parent
WHEN = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)
SENDER_ODS = "RM1"  # MessageHeader.sender of the unsigned Bundle, and so Bundle.signature.who
TEST_ONLY_MEMBER = "x-handover-test-only"
TEST_ONLY_TEXT = "PUBLISHED TEST KEY: never register it in a real network"
ES256_LABEL = b"handover signing test vector ES256 (published, never register)"
ED25519_LABEL = b"handover signing test vector Ed25519 (published, never register)"
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

# The unsigned message, exactly as published. Deliberately awkward for canonicalisation: keys out of order
# (and "_birthDate", which sorts between upper- and lower-case keys), whitespace including a tab, "1.0",
# "1e2", "12.50", "1E-7", "1e21" and 2^53-1 as numbers, "\u" escapes in upper and lower case (non-ASCII
# names, U+2028, a surrogate pair), an escaped solidus "\/", quotes, a backslash, a tab, a newline, and
# "<", ">", "&" and "'", which some JSON serialisers escape by default. RFC 8785 undoes all of it.
UNSIGNED_TEXT = r"""{
  "resourceType": "Bundle",
  "type": "message",
  "id": "00459139-c7ee-5dfb-bb9c-87cfcd5439ef",
  "timestamp": "2026-11-24T10:00:00Z",
  "identifier": {"value": "urn:uuid:6587e3e3-220f-54cd-8980-420e648b474b", "system": "urn:ietf:rfc:3986"},
  "entry": [
    {
      "fullUrl": "urn:uuid:ade30009-5b54-570d-95cb-1e433b232714",
      "resource": {
        "resourceType": "MessageHeader",
        "id": "ade30009-5b54-570d-95cb-1e433b232714",
        "eventCoding": {
          "system": "https://handover.nhs.example/fhir/CodeSystem/handover-event",
          "code": "referral"
        },
        "destination": [
          {
            "endpoint": "urn:ods:RGT",
            "receiver": {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "RGT"}}
          }
        ],
        "sender": {
          "reference": "urn:uuid:6c82de49-743b-561d-b5e6-6399fe1ea11b",
          "identifier": {"system": "https:\/\/fhir.nhs.uk\/Id\/ods-organization-code", "value": "RM1"}
        },
        "source": {"software": "Handover signing test vector", "endpoint": "urn:ods:RM1"},
        "focus": [{"reference": "urn:uuid:f4ae41b1-8d6f-5a66-b9bc-77d9dfa07a45"}]
      }
    },
    {
      "fullUrl": "urn:uuid:f4ae41b1-8d6f-5a66-b9bc-77d9dfa07a45",
      "resource": {
        "resourceType": "ServiceRequest",
        "id": "f4ae41b1-8d6f-5a66-b9bc-77d9dfa07a45",
        "extension": [
          {
            "url": "https://handover.nhs.example/fhir/StructureDefinition/signing-test-vector-numbers",
            "extension": [
              {"valueDecimal": 1.0, "url": "one-point-zero"},
              {"url": "exponent", "valueDecimal": 1e2},
              {"url": "trailing-zero", "valueDecimal": 12.50},
              {"url": "small", "valueDecimal": 1E-7},
              {"url": "large", "valueDecimal": 1e21},
              {"url": "max-safe-integer", "valueDecimal": 9007199254740991}
            ]
          }
        ],
        "status": "active",
        "intent": "order",
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": "urn:uuid:4294c377-71ee-53bd-a997-6d2de50c381b"}],
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "3457005", "display": "Patient referral"}]},
        "subject": {"reference": "urn:uuid:73545a88-1616-57c8-a920-88784a6fca70"},
        "requester": {"reference": "urn:uuid:fcdb78e4-308a-5fed-b5be-4243e0fd9176"},
        "performer": [{"reference": "urn:uuid:66064884-cb62-53f0-a713-6b725408b731"}],
        "reasonReference": [{"reference": "urn:uuid:72c03a7b-67fc-56d0-80ed-3dfc93602696"}],
        "authoredOn": "2026-11-24T09:58:00Z",
        "note": [
          {
            "text": "Local MDT \u2014 colorectal liver metastases, segments 4\/5 & 8 (<2 cm, >1 lesion).\u2028CEA 12.5 \u00B5g\/L; AFP (\ud835\udefc-fetoprotein) normal.\nQuestion for SMDT: \"resectable?\" \\ patient's preference:\tsurgery."
          }
        ]
      }
    },
    {
      "fullUrl": "urn:uuid:73545a88-1616-57c8-a920-88784a6fca70",
      "resource": {
        "resourceType": "Patient",
        "id": "73545a88-1616-57c8-a920-88784a6fca70",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9994242423"}],
        "name": [{"use": "official", "given": ["Zo\u00eb"], "family": "Ó Briain"}],
        "gender": "female",
        "birthDate": "1958-03-14",
        "_birthDate": {
          "extension": [
            {
              "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
              "valueDateTime": "1958-03-14T06:30:00+00:00"
            }
          ]
        }
      }
    },
    {
      "fullUrl": "urn:uuid:72c03a7b-67fc-56d0-80ed-3dfc93602696",
      "resource": {
        "resourceType": "Condition",
        "id": "72c03a7b-67fc-56d0-80ed-3dfc93602696",
        "subject": {"reference": "urn:uuid:73545a88-1616-57c8-a920-88784a6fca70"},
        "code": {
          "coding": [{"system": "http://snomed.info/sct", "code": "94381002", "display": "Secondary malignant neoplasm of liver"}]
        },
        "verificationStatus": {
          "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]
        },
        "clinicalStatus": {
          "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
        }
      }
    },
    {
      "fullUrl": "urn:uuid:fcdb78e4-308a-5fed-b5be-4243e0fd9176",
      "resource": {
        "resourceType": "Practitioner",
        "id": "fcdb78e4-308a-5fed-b5be-4243e0fd9176",
        "identifier": [{"system": "https://fhir.hl7.org.uk/Id/gmc-number", "value": "7000001"}],
        "name": [{"family": "N\u00ED Mhaoileoin", "given": ["Siobhán"], "prefix": ["Dr"]}]
      }
    },
    {
      "fullUrl": "urn:uuid:6c82de49-743b-561d-b5e6-6399fe1ea11b",
      "resource": {
	"resourceType": "Organization",
        "id": "6c82de49-743b-561d-b5e6-6399fe1ea11b",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "RM1"}],
        "name": "Norfolk and Norwich University Hospitals NHS Foundation Trust"
      }
    },
    {
      "fullUrl": "urn:uuid:66064884-cb62-53f0-a713-6b725408b731",
      "resource": {
        "resourceType": "Organization",
        "id": "66064884-cb62-53f0-a713-6b725408b731",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "RGT"}],
        "name": "Cambridge University Hospitals NHS Foundation Trust (Addenbrooke\u2019s)"
      }
    }
  ]
}
"""  # noqa: E501 - JSON string values cannot be wrapped


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64u_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _with_kid(members: dict[str, str], alg: str) -> dict[str, Any]:
    return {**members, "kid": thumbprint(members), "alg": alg, "use": "sig", TEST_ONLY_MEMBER: TEST_ONLY_TEXT}


def es256_test_key() -> dict[str, Any]:
    """The published ES256 test key: private scalar = SHA-256(ES256_LABEL) reduced into [1, n-1]."""
    scalar = int.from_bytes(hashlib.sha256(ES256_LABEL).digest(), "big") % (P256_ORDER - 1) + 1
    public = ec.derive_private_key(scalar, ec.SECP256R1()).public_key().public_numbers()
    members = {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64u(public.x.to_bytes(32, "big")),
        "y": _b64u(public.y.to_bytes(32, "big")),
        "d": _b64u(scalar.to_bytes(32, "big")),
    }
    return _with_kid(members, "ES256")


def ed25519_test_key() -> dict[str, Any]:
    """The published Ed25519 test key: private seed = SHA-256(ED25519_LABEL)."""
    seed = hashlib.sha256(ED25519_LABEL).digest()
    public = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key()
    x = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _with_kid({"kty": "OKP", "crv": "Ed25519", "x": _b64u(x), "d": _b64u(seed)}, "Ed25519")


def public_entry(private_jwk: Mapping[str, Any], owner: str = SENDER_ODS) -> PublicKeyEntry:
    """A registry-style public key entry for a test key (for verifying the vectors, never for a network)."""
    public = {name: private_jwk[name] for name in ("kty", "crv", "x", "y") if name in private_jwk}
    alg = str(private_jwk["alg"])
    return PublicKeyEntry(thumbprint(public), alg, owner, "active", None, {**public, "alg": alg, "use": "sig"})


def _json_file(value: Any) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _signed_text(signature: Mapping[str, Any]) -> bytes:
    """The unsigned text, unchanged, with ``"signature"`` appended as the Bundle's last member."""
    body = UNSIGNED_TEXT.rstrip()
    if not body.endswith("}"):
        raise ValueError("the unsigned Bundle text must end with '}'")
    rendered = json.dumps(dict(signature), indent=2, ensure_ascii=False).replace("\n", "\n  ")
    return (body[:-1].rstrip() + ',\n  "signature": ' + rendered + "\n}\n").encode("utf-8")


def _compact(signed: Mapping[str, Any]) -> tuple[str, str]:
    """The protected header and signature segments of a signed Bundle's detached JWS."""
    header_b64, payload_b64, signature_b64 = base64.b64decode(signed["signature"]["data"]).decode("ascii").split(".")
    if payload_b64:
        raise ValueError("the JWS is not detached")
    return header_b64, signature_b64


def _reusable_es256(existing: Path, unsigned: Mapping[str, Any], entry: PublicKeyEntry) -> dict[str, Any] | None:
    """The published ES256 signature, if it still signs the current canonical bytes with the current header."""
    if not existing.is_file():
        return None
    try:
        signed = parse_strict_json(existing.read_bytes())
        verify_bundle_signature(signed, lambda kid: entry if kid == entry.kid else None)
    except (HandoverError, OSError, ValueError):
        return None
    if {k: v for k, v in signed.items() if k != "signature"} != dict(unsigned):
        return None
    expected_header = {"alg": "ES256", "kid": entry.kid, "typ": "handover+jws", "iat": int(WHEN.timestamp())}
    if json.loads(_b64u_decode(_compact(signed)[0])) != expected_header:
        return None
    return signed


def build(directory: Path = HERE) -> dict[str, bytes]:
    """Every generated file's name and exact bytes (README.md and this script are written by hand)."""
    unsigned_raw = UNSIGNED_TEXT.encode("utf-8")
    unsigned = parse_strict_json(unsigned_raw)
    canonical = canonical_bytes(unsigned)
    files: dict[str, bytes] = {
        "unsigned-bundle.json": unsigned_raw,
        "canonical.json": canonical,
        "canonical.sha256": (hashlib.sha256(canonical).hexdigest() + "\n").encode("ascii"),
    }
    keys = {"es256": es256_test_key(), "ed25519": ed25519_test_key()}
    files["es256-test-key.json"] = _json_file(keys["es256"])
    files["ed25519-test-key.json"] = _json_file(keys["ed25519"])
    public_keys = [{k: v for k, v in key.items() if k != "d"} for key in keys.values()]
    files["test-jwks.json"] = _json_file({"keys": public_keys})

    for name, key in keys.items():
        signed: dict[str, Any] | None = None
        if name == "es256":
            signed = _reusable_es256(directory / "signed-es256.json", unsigned, public_entry(key))
        if signed is None:
            signed = sign_bundle(unsigned, key, SENDER_ODS, when=WHEN)
        header_b64, _ = _compact(signed)
        files[f"protected-header-{name}.json"] = _b64u_decode(header_b64)
        files[f"signing-input-{name}.txt"] = (header_b64 + "." + _b64u(canonical)).encode("ascii")
        files[f"signed-{name}.json"] = _signed_text(signed["signature"])
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file differs")
    args = parser.parse_args(argv)
    files = build(HERE)
    stale = [name for name, data in files.items() if not (HERE / name).is_file() or (HERE / name).read_bytes() != data]
    if args.check:
        for name in stale:
            print(f"differs: {name}")
        return 1 if stale else 0
    for name in stale:
        (HERE / name).write_bytes(files[name])
        print(f"wrote {name}")
    print(f"canonical SHA-256 {hashlib.sha256(files['canonical.json']).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
