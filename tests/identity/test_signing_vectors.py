"""The published signing test vectors (fhir_profiles/signing-vectors/) are consistent with each other, with
service/identity/signing.py, with their generator and with the independent conformance signer (hosign)."""

from __future__ import annotations

import base64
import hashlib
import importlib
import importlib.util
import json
import os
import re
import sys
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import rfc8785

from service.identity.registry import RegistryError, registry_from_document
from service.identity.signing import (
    PublicKeyEntry,
    canonical_bytes,
    payload_sha256,
    sign_bundle,
    thumbprint,
    verify_bundle_signature,
)
from service.strictjson import parse_strict_json
from service.terminology import is_nhs_number

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "fhir_profiles" / "signing-vectors"
CONFORMANCE_DIR = Path(os.environ.get("HANDOVER_CONFORMANCE_DIR", ROOT.parent / "shared" / "conformance"))
ALGS = {"es256": "ES256", "ed25519": "Ed25519"}


def read(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def load(name: str) -> dict[str, Any]:
    return parse_strict_json(read(name))


def public_entry(private: dict[str, Any], owner: str = "RM1") -> PublicKeyEntry:
    public: dict[str, Any] = {name: private[name] for name in ("kty", "crv", "x", "y") if name in private}
    return PublicKeyEntry(thumbprint(public), private["alg"], owner, "active", None, public)


def lookup() -> dict[str, PublicKeyEntry]:
    entries = [public_entry(load(f"{name}-test-key.json")) for name in ALGS]
    return {entry.kid: entry for entry in entries}


def detached_parts(signed: dict[str, Any]) -> tuple[str, str, str]:
    header, payload, signature = base64.b64decode(signed["signature"]["data"], validate=True).decode().split(".")
    return header, payload, signature


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("signing_vectors_generate", VECTORS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def hosign() -> ModuleType:
    if not (CONFORMANCE_DIR / "hosign.py").is_file():
        pytest.skip(f"conformance signer not found in {CONFORMANCE_DIR} (set HANDOVER_CONFORMANCE_DIR)")
    if str(CONFORMANCE_DIR) not in sys.path:
        sys.path.insert(0, str(CONFORMANCE_DIR))
    return importlib.import_module("hosign")


def test_canonical_file_is_rfc8785_of_the_unsigned_bundle_without_trailing_newline() -> None:
    unsigned = load("unsigned-bundle.json")
    canonical = read("canonical.json")
    assert canonical == bytes(rfc8785.dumps(unsigned)) == canonical_bytes(unsigned)
    assert not canonical.endswith(b"\n")


def test_sha256_file_matches_the_canonical_bytes_and_the_readme() -> None:
    digest = read("canonical.sha256").decode("ascii").strip()
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert digest == hashlib.sha256(read("canonical.json")).hexdigest() == payload_sha256(load("unsigned-bundle.json"))
    assert digest in read("README.md").decode("utf-8")


def test_unsigned_bundle_is_a_plausible_synthetic_message_with_the_advertised_traps() -> None:
    raw = read("unsigned-bundle.json").decode("utf-8")
    for trap in ('": 1.0,', '": 1e2}', '": 12.50}', '": 1E-7}', '": 1e21}', "\\u2028", "\\/", "\\u00eb", "\\ud835"):
        assert trap in raw, trap
    assert "\t" in raw and "Ó Briain" in raw and "_birthDate" in raw
    canonical = read("canonical.json").decode("utf-8")
    assert "Zoë" in canonical and "\u2028" in canonical and "\U0001d6fc" in canonical and "\\/" not in canonical
    assert '"valueDecimal":1}' in canonical and '"valueDecimal":100}' in canonical and "1e+21" in canonical
    bundle = load("unsigned-bundle.json")
    assert (bundle["resourceType"], bundle["type"], "signature" in bundle) == ("Bundle", "message", False)
    header = bundle["entry"][0]["resource"]
    assert header["resourceType"] == "MessageHeader" and header["sender"]["identifier"]["value"] == "RM1"
    patients = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    nhs_number = patients[0]["identifier"][0]["value"]
    assert nhs_number.startswith("999") and is_nhs_number(nhs_number)


@pytest.mark.parametrize("name", list(ALGS))
def test_signed_bundles_verify_with_the_published_keys(name: str) -> None:
    keys = lookup()
    signed = load(f"signed-{name}.json")
    assert {k: v for k, v in signed.items() if k != "signature"} == load("unsigned-bundle.json")
    verified = verify_bundle_signature(signed, keys.get)
    sender = signed["entry"][0]["resource"]["sender"]["identifier"]["value"]
    assert verified.alg == ALGS[name]
    assert verified.kid == load(f"{name}-test-key.json")["kid"]
    assert verified.who_ods == sender == "RM1"
    assert verified.kid in read("README.md").decode("utf-8")


@pytest.mark.parametrize("name", list(ALGS))
def test_header_and_signing_input_files_match_the_signed_bundle(name: str) -> None:
    header_b64, payload_b64, _ = detached_parts(load(f"signed-{name}.json"))
    assert payload_b64 == ""
    header_bytes = base64.urlsafe_b64decode(header_b64 + "=" * (-len(header_b64) % 4))
    assert header_bytes == read(f"protected-header-{name}.json")
    header = json.loads(header_bytes)
    assert set(header) == {"alg", "kid", "typ", "iat"} and header["typ"] == "handover+jws"
    payload = base64.urlsafe_b64encode(read("canonical.json")).rstrip(b"=").decode()
    assert read(f"signing-input-{name}.txt").decode("ascii") == f"{header_b64}.{payload}"


def test_ed25519_signature_regenerates_byte_identically() -> None:
    published = load("signed-ed25519.json")
    key = load("ed25519-test-key.json")
    again = sign_bundle(load("unsigned-bundle.json"), key, "RM1", when=parse_when(published))
    assert again["signature"] == published["signature"]


def parse_when(signed: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(signed["signature"]["when"].replace("Z", "+00:00"))


def test_every_generated_file_is_what_the_generator_produces(generator: ModuleType) -> None:
    files: dict[str, bytes] = generator.build(VECTORS)
    assert set(files) == {
        p.name for p in VECTORS.iterdir() if p.name not in ("README.md", "generate.py", "__pycache__")
    }
    for name, data in files.items():
        assert read(name) == data, name


def test_published_keys_are_marked_test_only_and_refused_by_the_registry() -> None:
    for name, alg in ALGS.items():
        key = load(f"{name}-test-key.json")
        assert key["use"] == "sig" and key["alg"] == alg and key["kid"] == thumbprint(key)
        assert "never register" in key["x-handover-test-only"]
    public = load("test-jwks.json")["keys"]
    assert all("d" not in key for key in public)
    document = {
        "hub": {"jwks": {"keys": []}},
        "participants": {
            "RGT": {"name": "Centre", "role": "centre", "jwks": {"keys": [{**public[0], "status": "active"}]}}
        },
    }
    with pytest.raises(RegistryError, match="unknown member"):
        registry_from_document(document)


def test_hosign_computes_the_same_canonical_bytes_and_verifies_ours(hosign: ModuleType) -> None:
    assert hosign.canonical(load("unsigned-bundle.json")) == read("canonical.json")
    assert hosign.canonical(load("signed-es256.json")) == read("canonical.json")
    for name in ALGS:
        key = load(f"{name}-test-key.json")
        assert hosign.thumbprint(key) == key["kid"]
    # hosign's deterministic Ed25519 signature over its own header verifies with the project's code
    signed = hosign.sign(load("unsigned-bundle.json"), load("ed25519-test-key.json"), "RM1")
    assert verify_bundle_signature(signed, lookup().get).alg == "Ed25519"
