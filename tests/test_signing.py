"""Specification of service/identity/signing.py: canonical form, detached JWS sign/verify, interoperability with the
independent conformance signer (hosign), and the S1-S16 refusal corpus of RELIABILITY-SECURITY.md."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import importlib
import json
import os
import re
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jwk, jws

from service.errors import Code, HandoverError
from service.identity.signing import (
    PublicKeyEntry,
    VerifiedSignature,
    canonical_bytes,
    payload_sha256,
    sign_bundle,
    sign_compact_jwt,
    thumbprint,
    verify_bundle_signature,
)

ROOT = Path(__file__).resolve().parents[1]
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
    r, s = decode_dss_signature(_ec_key(private).sign(message, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def es256_der(private: dict[str, Any], message: bytes) -> bytes:
    return _ec_key(private).sign(message, ec.ECDSA(hashes.SHA256()))


def ed25519_sign(private: dict[str, Any], message: bytes) -> bytes:
    return ed25519.Ed25519PrivateKey.from_private_bytes(unb64u(private["d"])).sign(message)


def _ec_key(private: dict[str, Any]) -> ec.EllipticCurvePrivateKey:
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


# ---------------------------------------------------------------- the independent signer from /work/shared


@pytest.fixture(scope="module")
def hosign() -> ModuleType:
    if not (CONFORMANCE_DIR / "hosign.py").is_file():
        pytest.skip(f"conformance signer not found in {CONFORMANCE_DIR} (set HANDOVER_CONFORMANCE_DIR)")
    if str(CONFORMANCE_DIR) not in sys.path:
        sys.path.insert(0, str(CONFORMANCE_DIR))
    return importlib.import_module("hosign")  # located at run time


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


# ---------------------------------------------------------------- round trips and the contract's shape


@pytest.mark.parametrize("make_key", [ec_private_jwk, ed_private_jwk], ids=["es256", "ed25519"])
def test_sign_then_verify_round_trip(make_key: Callable[[], dict[str, Any]]) -> None:
    private = make_key()
    lookup = RecordingLookup(entry_for(private, "RM1"))
    signed = sign_bundle(sample_bundle(), private, "RM1", when=WHEN)
    verified = verify_bundle_signature(signed, lookup)
    assert verified == VerifiedSignature(
        kid=private["kid"], alg=private["alg"], owner_ods="RM1", signed_at=WHEN, who_ods="RM1"
    )
    assert verified.key is lookup.entries[private["kid"]]
    assert lookup.calls == [private["kid"]]


def test_signature_element_is_exactly_the_contracts() -> None:
    private = ec_private_jwk()
    bundle = sample_bundle()
    before = copy.deepcopy(bundle)
    signed = sign_bundle(bundle, private, "RM1", when=datetime(2026, 11, 24, 10, 0, 0, 123456, tzinfo=UTC))
    assert bundle == before, "sign_bundle must not modify its input"
    signature = signed.pop("signature")
    assert signed == bundle
    data = signature.pop("data")
    assert signature == {
        "type": [{"system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.5"}],
        "when": "2026-11-24T10:00:00Z",
        "who": {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "RM1"}},
        "sigFormat": "application/jose",
    }
    compact = base64.b64decode(data, validate=True).decode("ascii")
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.\.[A-Za-z0-9_-]+", compact)
    header_b64, _, signature_b64 = compact.split(".")
    assert (
        unb64u(header_b64)
        == json.dumps(
            {"alg": "ES256", "kid": private["kid"], "typ": "handover+jws", "iat": int(WHEN.timestamp())},
            separators=(",", ":"),
        ).encode()
    )
    assert len(unb64u(signature_b64)) == 64


def test_resigning_replaces_the_old_signature() -> None:
    private = ec_private_jwk()
    first = sign_bundle(sample_bundle(), private, "RM1", when=WHEN)
    second = sign_bundle(first, private, "RM1")
    assert list(second).count("signature") == 1
    assert verify_bundle_signature(second, RecordingLookup(entry_for(private, "RM1"))).kid == private["kid"]


def test_canonical_bytes_drop_signature_and_do_not_mutate() -> None:
    signed = sign_bundle(sample_bundle(), ec_private_jwk(), "RM1", when=WHEN)
    before = copy.deepcopy(signed)
    assert canonical_bytes(signed) == canonical_bytes(sample_bundle())
    assert b'"signature"' not in canonical_bytes(signed)
    assert signed == before
    assert payload_sha256(signed) == hashlib.sha256(canonical_bytes(sample_bundle())).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", payload_sha256(signed))


def test_sign_refuses_unusable_keys_and_naive_times() -> None:
    private = ec_private_jwk()
    with pytest.raises(ValueError, match="timezone"):
        sign_bundle(sample_bundle(), private, "RM1", when=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="thumbprint"):
        sign_bundle(sample_bundle(), {**private, "kid": "x" * 43}, "RM1")
    with pytest.raises(ValueError, match="private"):
        sign_bundle(sample_bundle(), {k: v for k, v in private.items() if k != "d"}, "RM1")
    with pytest.raises(ValueError, match="alg"):
        sign_bundle(sample_bundle(), {**private, "alg": "ES384"}, "RM1")
    with pytest.raises(ValueError, match="P-256"):
        sign_bundle(sample_bundle(), {"kty": "oct", "k": "c2VjcmV0"}, "RM1")


def test_thumbprint_matches_rfc_8037_example_and_hosign(hosign: ModuleType) -> None:
    # RFC 8037 appendix A.3
    example = {"crv": "Ed25519", "kty": "OKP", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    assert thumbprint(example) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    private = ec_private_jwk()
    assert (
        thumbprint(private) == hosign.thumbprint(private) == thumbprint({k: v for k, v in private.items() if k != "d"})
    )


@pytest.mark.parametrize("make_key", [ec_private_jwk, ed_private_jwk], ids=["es256", "ed25519"])
def test_sign_compact_jwt(make_key: Callable[[], dict[str, Any]]) -> None:
    private = make_key()
    claims = {"iss": "RM1", "sub": "RM1", "aud": "handover", "iat": 1, "exp": 241, "jti": "a"}
    token = sign_compact_jwt(claims, private)
    header_b64, claims_b64, signature_b64 = token.split(".")
    assert json.loads(unb64u(header_b64)) == {"alg": private["alg"], "kid": private["kid"], "typ": "JWT"}
    assert json.loads(unb64u(claims_b64)) == claims
    public = jwk.import_key({k: v for k, v in private.items() if k not in ("d", "kid")})
    jws.deserialize_compact(token, public, algorithms=[private["alg"]])
    assert len(unb64u(signature_b64)) == 64


# ---------------------------------------------------------------- interoperability with hosign, both ways


@pytest.mark.parametrize("make_key", [ec_private_jwk, ed_private_jwk], ids=["es256", "ed25519"])
def test_bundle_signed_by_hosign_verifies_here(hosign: ModuleType, make_key: Callable[[], dict[str, Any]]) -> None:
    private = make_key()
    signed = hosign.sign(sample_bundle(), private, "RM1")
    verified = verify_bundle_signature(signed, RecordingLookup(entry_for(private, "RM1")))
    assert (verified.kid, verified.alg, verified.owner_ods, verified.signed_at) == (
        private["kid"],
        private["alg"],
        "RM1",
        None,
    )


def test_hosign_referral_message_verifies_here(hosign: ModuleType) -> None:
    messages = importlib.import_module("messages")  # beside hosign in the conformance directory

    private = ec_private_jwk()
    bundle = messages.referral("https://example.org/handover-event", "RDE", seed=7)
    signed = hosign.sign(bundle, private, "RDE")
    assert verify_bundle_signature(signed, RecordingLookup(entry_for(private, "RDE"))).owner_ods == "RDE"
    assert payload_sha256(signed) == hashlib.sha256(hosign.canonical(bundle)).hexdigest()


@pytest.mark.parametrize("make_key", [ec_private_jwk, ed_private_jwk], ids=["es256", "ed25519"])
def test_bundle_signed_here_verifies_independently(hosign: ModuleType, make_key: Callable[[], dict[str, Any]]) -> None:
    private = make_key()
    signed = sign_bundle(sample_bundle(), private, "RM1", when=WHEN)
    header = independent_verify(hosign, signed, {k: v for k, v in private.items() if k != "d"})
    assert header == {
        "alg": private["alg"],
        "kid": hosign.thumbprint(private),
        "typ": "handover+jws",
        "iat": 1795514400,
    }
    theirs = hosign.sign(sample_bundle(), private, "RM1", when="2026-11-24T10:00:00Z")
    assert {k: v for k, v in signed["signature"].items() if k != "data"} == {
        k: v for k, v in theirs["signature"].items() if k != "data"
    }, "the signature element must have the same shape, byte for byte, as the independent signer's"
    assert canonical_bytes(signed) == hosign.canonical(signed)


# ---------------------------------------------------------------- S8: JCS equivalence


def test_s8_whitespace_key_order_and_number_spelling_are_equivalent() -> None:
    private = ec_private_jwk()
    signed = sign_bundle(sample_bundle(), private, "RM1", when=WHEN)
    lookup = RecordingLookup(entry_for(private, "RM1"))
    pretty = json.dumps(signed, indent=4, sort_keys=True)
    reordered = json.loads(pretty, object_pairs_hook=lambda pairs: dict(reversed(pairs)))
    assert list(reordered) != list(signed)
    verify_bundle_signature(reordered, lookup)
    as_float = json.loads(json.dumps(signed).replace('"value": 1,', '"value": 1.0,'))
    assert as_float["entry"][1]["resource"]["valueQuantity"]["value"] == 1.0
    assert isinstance(as_float["entry"][1]["resource"]["valueQuantity"]["value"], float)
    verify_bundle_signature(as_float, lookup)


@settings(max_examples=50, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.recursive(
            st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
            max_leaves=12,
        ),
        max_size=6,
    )
)
def test_s8_any_key_order_of_any_json_verifies(extra: dict[str, Any]) -> None:
    private = _HYPOTHESIS_KEY
    bundle = {**sample_bundle(), "extension": [extra]}
    signed = sign_bundle(bundle, private, "RM1", when=WHEN)
    shuffled = json.loads(json.dumps(signed), object_pairs_hook=lambda pairs: dict(reversed(pairs)))
    assert verify_bundle_signature(shuffled, RecordingLookup(entry_for(private, "RM1"))).kid == private["kid"]


_HYPOTHESIS_KEY = ec_private_jwk()


# ---------------------------------------------------------------- the named refusal corpus (*_fail)


@dataclass(frozen=True)
class Keys:
    ec: dict[str, Any]
    ed: dict[str, Any]
    other_ec: dict[str, Any]

    def header(self, **over: Any) -> dict[str, Any]:
        return {"alg": "ES256", "kid": self.ec["kid"], "typ": "handover+jws", "iat": int(WHEN.timestamp()), **over}

    def sign_es(self, bundle: dict[str, Any], **over: Any) -> dict[str, Any]:
        return forge(bundle, self.header(**over), lambda m: es256_raw(self.ec, m))


Mutation = Callable[[dict[str, Any], Keys], dict[str, Any]]


@dataclass(frozen=True)
class Case:
    name: str
    mutate: Mutation
    expected: Code


def _drop_signature(b: dict[str, Any], k: Keys) -> dict[str, Any]:
    return b


def _hs256_with_public_pem(b: dict[str, Any], k: Keys) -> dict[str, Any]:
    pem = (
        _ec_key(k.ec)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return forge(b, k.header(alg="HS256"), lambda m: hmac.new(pem, m, hashlib.sha256).digest())


def _hs256_with_public_jwk(b: dict[str, Any], k: Keys) -> dict[str, Any]:
    secret = json.dumps({n: k.ec[n] for n in ("crv", "kty", "x", "y")}, separators=(",", ":")).encode()
    return forge(b, k.header(alg="HS256"), lambda m: hmac.new(secret, m, hashlib.sha256).digest())


def _json_serialisation(b: dict[str, Any], k: Keys, *, general: bool) -> dict[str, Any]:
    header_b64, _, signature_b64 = detached_parts(k.sign_es(b))
    member = {"protected": header_b64, "signature": signature_b64}
    doc = {"payload": "", "signatures": [member, member]} if general else {"payload": "", **member}
    return with_data(b, base64.b64encode(json.dumps(doc).encode()).decode())


def _compact(b: dict[str, Any], compact: str) -> dict[str, Any]:
    return with_data(b, base64.b64encode(compact.encode()).decode())


def _signature_bytes(b: dict[str, Any], k: Keys, change: Callable[[bytes], bytes]) -> dict[str, Any]:
    header_b64, _, signature_b64 = detached_parts(k.sign_es(b))
    return _compact(b, f"{header_b64}..{b64u(change(unb64u(signature_b64)))}")


def _flip_last_bit(sig: bytes) -> bytes:
    return sig[:-1] + bytes([sig[-1] ^ 1])


def _tamper_one_character(b: dict[str, Any], k: Keys) -> dict[str, Any]:
    signed = k.sign_es(b)
    signed["entry"][1]["resource"]["note"][0]["text"] = signed["entry"][1]["resource"]["note"][0]["text"].replace(
        "12", "13"
    )
    return signed


def _non_jcs_payload(b: dict[str, Any], k: Keys) -> dict[str, Any]:
    return forge(b, k.header(), lambda m: es256_raw(k.ec, m), payload=json.dumps(b).encode())


def _header_bytes(b: dict[str, Any], k: Keys, raw: bytes) -> dict[str, Any]:
    return forge(b, raw, lambda m: es256_raw(k.ec, m))


def _header_alg(alg: str, signer: Callable[[Keys, bytes], bytes]) -> Mutation:
    """Sign with the registered ES256 key's kid but header `alg`, using `signer`."""
    return lambda b, k: forge(b, k.header(alg=alg), lambda m: signer(k, m))


_GOOD_HEADER_JSON = '"kid":"{kid}","typ":"handover+jws"'

CORPUS: list[Case] = [
    # S1: no signature at all
    Case("s1_signature_absent_fail", _drop_signature, Code.SIGNATURE_MISSING),
    Case("s1_signature_null_fail", lambda b, k: {**b, "signature": None}, Code.SIGNATURE_MISSING),
    Case(
        "s1_data_absent_fail",
        lambda b, k: {**b, "signature": {"sigFormat": "application/jose"}},
        Code.SIGNATURE_MISSING,
    ),
    Case("s1_data_empty_fail", lambda b, k: with_data(b, ""), Code.SIGNATURE_MISSING),
    # S2: alg none in any spelling, with or without a signature part
    *(
        Case(
            f"s2_alg_{alg}_fail",
            _header_alg(alg, lambda k, m: b"\x00" * 64),
            Code.SIGNATURE_INVALID,
        )
        for alg in ("none", "None", "nOnE", "NONE")
    ),
    Case(
        "s2_alg_none_empty_signature_fail",
        lambda b, k: _compact(b, b64u(b'{"alg":"none"}') + ".."),
        Code.SIGNATURE_INVALID,
    ),
    Case(
        "s2_alg_missing_fail",
        lambda b, k: forge(b, {"kid": k.ec["kid"], "typ": "handover+jws"}, lambda m: es256_raw(k.ec, m)),
        Code.SIGNATURE_INVALID,
    ),
    # S3: HMAC keyed with the trust's public key
    Case("s3_hs256_public_pem_as_secret_fail", _hs256_with_public_pem, Code.SIGNATURE_INVALID),
    Case("s3_hs256_public_jwk_as_secret_fail", _hs256_with_public_jwk, Code.SIGNATURE_INVALID),
    # S4: an alg other than the one pinned for the kid
    *(
        Case(
            f"s4_alg_{alg}_for_es256_key_fail",
            _header_alg(alg, lambda k, m: es256_raw(k.ec, m)),
            Code.SIGNATURE_INVALID,
        )
        for alg in ("ES384", "ES512", "RS256", "PS256", "EdDSA", "es256", "ES256K")
    ),
    Case(
        "s4_ed25519_for_es256_key_fail",
        lambda b, k: forge(b, k.header(alg="Ed25519"), lambda m: ed25519_sign(k.ed, m)),
        Code.SIGNATURE_INVALID,
    ),
    Case(
        "s4_eddsa_for_ed25519_key_fail",
        lambda b, k: forge(b, k.header(alg="EdDSA", kid=k.ed["kid"]), lambda m: ed25519_sign(k.ed, m)),
        Code.SIGNATURE_INVALID,
    ),
    Case(
        "s4_es256_for_ed25519_key_fail",
        lambda b, k: forge(b, k.header(kid=k.ed["kid"]), lambda m: es256_raw(k.ec, m)),
        Code.SIGNATURE_INVALID,
    ),
    # S5: kids that are unknown, hostile, huge or not strings
    Case("s5_kid_unknown_fail", lambda b, k: k.sign_es(b, kid=k.other_ec["kid"]), Code.UNKNOWN_KEY),
    Case("s5_kid_path_traversal_fail", lambda b, k: k.sign_es(b, kid="../../x"), Code.UNKNOWN_KEY),
    Case("s5_kid_sql_injection_fail", lambda b, k: k.sign_es(b, kid="' OR 1=1 --"), Code.UNKNOWN_KEY),
    Case("s5_kid_trailing_newline_fail", lambda b, k: k.sign_es(b, kid=k.ec["kid"] + "\n"), Code.UNKNOWN_KEY),
    Case("s5_kid_42_characters_fail", lambda b, k: k.sign_es(b, kid=k.ec["kid"][:42]), Code.UNKNOWN_KEY),
    Case("s5_kid_fullwidth_fail", lambda b, k: k.sign_es(b, kid="\uff21" + k.ec["kid"][1:]), Code.UNKNOWN_KEY),
    Case("s5_kid_500_characters_fail", lambda b, k: k.sign_es(b, kid="A" * 500), Code.UNKNOWN_KEY),
    Case("s5_kid_10kb_fail", lambda b, k: k.sign_es(b, kid="A" * 10240), Code.SIGNATURE_INVALID),
    Case("s5_kid_integer_fail", lambda b, k: k.sign_es(b, kid=12345), Code.UNKNOWN_KEY),
    Case("s5_kid_null_fail", lambda b, k: k.sign_es(b, kid=None), Code.UNKNOWN_KEY),
    Case("s5_kid_list_fail", lambda b, k: k.sign_es(b, kid=[k.ec["kid"]]), Code.UNKNOWN_KEY),
    Case("s5_kid_object_fail", lambda b, k: k.sign_es(b, kid={"$ne": ""}), Code.UNKNOWN_KEY),
    Case(
        "s5_kid_absent_fail",
        lambda b, k: forge(b, {"alg": "ES256", "typ": "handover+jws"}, lambda m: es256_raw(k.ec, m)),
        Code.UNKNOWN_KEY,
    ),
    # S6: keys from anywhere but the registry
    Case("s6_jku_fail", lambda b, k: k.sign_es(b, jku="https://attacker.example/jwks.json"), Code.SIGNATURE_INVALID),
    Case("s6_x5u_fail", lambda b, k: k.sign_es(b, x5u="https://attacker.example/cert.pem"), Code.SIGNATURE_INVALID),
    Case(
        "s6_jwk_fail",
        lambda b, k: k.sign_es(b, jwk={n: k.other_ec[n] for n in ("kty", "crv", "x", "y")}),
        Code.SIGNATURE_INVALID,
    ),
    Case("s6_x5c_fail", lambda b, k: k.sign_es(b, x5c=["MIIBszCCAVmgAwIBAgIU"]), Code.SIGNATURE_INVALID),
    # S7: b64 and crit
    Case("s7_b64_false_without_crit_fail", lambda b, k: k.sign_es(b, b64=False), Code.SIGNATURE_INVALID),
    Case("s7_b64_false_with_crit_fail", lambda b, k: k.sign_es(b, b64=False, crit=["b64"]), Code.SIGNATURE_INVALID),
    Case("s7_b64_true_fail", lambda b, k: k.sign_es(b, b64=True), Code.SIGNATURE_INVALID),
    Case("s7_unknown_crit_fail", lambda b, k: k.sign_es(b, crit=["exp"], exp=1), Code.SIGNATURE_INVALID),
    # S8: one character changed
    Case("s8_payload_changed_one_character_fail", _tamper_one_character, Code.SIGNATURE_INVALID),
    # S14: signed over a non-canonical serialisation
    Case("s14_signature_over_non_jcs_bytes_fail", _non_jcs_payload, Code.SIGNATURE_INVALID),
    # S15: DER instead of raw R||S, wrong lengths, wrong bits, wrong key
    Case(
        "s15_der_signature_fail",
        lambda b, k: forge(b, k.header(), lambda m: es256_der(k.ec, m)),
        Code.SIGNATURE_INVALID,
    ),
    Case("s15_signature_63_bytes_fail", lambda b, k: _signature_bytes(b, k, lambda s: s[:-1]), Code.SIGNATURE_INVALID),
    Case(
        "s15_signature_65_bytes_fail",
        lambda b, k: _signature_bytes(b, k, lambda s: s + b"\x00"),
        Code.SIGNATURE_INVALID,
    ),
    Case("s15_signature_128_bytes_fail", lambda b, k: _signature_bytes(b, k, lambda s: s + s), Code.SIGNATURE_INVALID),
    Case("s15_signature_bit_flipped_fail", lambda b, k: _signature_bytes(b, k, _flip_last_bit), Code.SIGNATURE_INVALID),
    Case(
        "s15_signature_all_zero_fail",
        lambda b, k: _signature_bytes(b, k, lambda s: b"\x00" * 64),
        Code.SIGNATURE_INVALID,
    ),
    Case(
        "s15_signed_by_another_key_fail",
        lambda b, k: forge(b, k.header(), lambda m: es256_raw(k.other_ec, m)),
        Code.SIGNATURE_INVALID,
    ),
    # S16: JSON serialisation and multiple signatures
    Case(
        "s16_flattened_json_serialisation_fail",
        lambda b, k: _json_serialisation(b, k, general=False),
        Code.SIGNATURE_INVALID,
    ),
    Case(
        "s16_general_json_two_signatures_fail",
        lambda b, k: _json_serialisation(b, k, general=True),
        Code.SIGNATURE_INVALID,
    ),
    Case(
        "s16_two_signature_elements_fail",
        lambda b, k: {**b, "signature": [k.sign_es(b)["signature"]] * 2},
        Code.SIGNATURE_INVALID,
    ),
    Case(
        "s16_two_compacts_concatenated_fail",
        lambda b, k: _compact(b, ".".join(detached_parts(k.sign_es(b)) * 2)),
        Code.SIGNATURE_INVALID,
    ),
    # the envelope: sigFormat, base64, compact form
    Case(
        "sigformat_wrong_fail",
        lambda b, k: {
            **k.sign_es(b),
            "signature": {**k.sign_es(b)["signature"], "sigFormat": "application/pkcs7-signature"},
        },
        Code.SIGNATURE_INVALID,
    ),
    Case(
        "sigformat_absent_fail",
        lambda b, k: {**b, "signature": {"data": k.sign_es(b)["signature"]["data"]}},
        Code.SIGNATURE_INVALID,
    ),
    Case("signature_not_object_fail", lambda b, k: {**b, "signature": "abc"}, Code.SIGNATURE_INVALID),
    Case("data_not_string_fail", lambda b, k: with_data(b, 12345), Code.SIGNATURE_INVALID),
    Case("data_not_base64_fail", lambda b, k: with_data(b, "not base64 at all!"), Code.SIGNATURE_INVALID),
    Case(
        "data_with_newline_fail",
        lambda b, k: with_data(
            b, k.sign_es(b)["signature"]["data"][:10] + "\n" + k.sign_es(b)["signature"]["data"][10:]
        ),
        Code.SIGNATURE_INVALID,
    ),
    Case(
        "data_raw_compact_not_base64_fail",
        lambda b, k: with_data(b, base64.b64decode(k.sign_es(b)["signature"]["data"]).decode()),
        Code.SIGNATURE_INVALID,
    ),
    Case("data_huge_fail", lambda b, k: with_data(b, "A" * 100_000), Code.SIGNATURE_INVALID),
    Case(
        "compact_payload_attached_fail",
        lambda b, k: forge(b, k.header(), lambda m: es256_raw(k.ec, m), attach=True),
        Code.SIGNATURE_INVALID,
    ),
    Case(
        "compact_two_parts_fail",
        lambda b, k: _compact(b, ".".join(detached_parts(k.sign_es(b))[::2])),
        Code.SIGNATURE_INVALID,
    ),
    Case(
        "compact_empty_header_fail",
        lambda b, k: _compact(b, ".." + detached_parts(k.sign_es(b))[2]),
        Code.SIGNATURE_INVALID,
    ),
    Case(
        "compact_padded_base64url_fail",
        lambda b, k: _compact(b, "{}..{}==".format(*detached_parts(k.sign_es(b))[::2])),
        Code.SIGNATURE_INVALID,
    ),
    # the protected header: strict JSON object with only alg, kid, typ, iat
    Case(
        "header_duplicate_alg_fail",
        lambda b, k: _header_bytes(
            b, k, ('{"alg":"none","alg":"ES256",' + _GOOD_HEADER_JSON.format(kid=k.ec["kid"]) + "}").encode()
        ),
        Code.SIGNATURE_INVALID,
    ),
    Case(
        "header_duplicate_kid_fail",
        lambda b, k: _header_bytes(
            b, k, ('{"alg":"ES256","kid":"x",' + _GOOD_HEADER_JSON.format(kid=k.ec["kid"]) + "}").encode()
        ),
        Code.SIGNATURE_INVALID,
    ),
    Case("header_json_array_fail", lambda b, k: _header_bytes(b, k, b'["ES256"]'), Code.SIGNATURE_INVALID),
    Case("header_not_json_fail", lambda b, k: _header_bytes(b, k, b"alg=ES256"), Code.SIGNATURE_INVALID),
    Case(
        "header_not_utf8_fail",
        lambda b, k: _header_bytes(b, k, b'{"alg":"ES256","typ":"\xff"}'),
        Code.SIGNATURE_INVALID,
    ),
    Case(
        "header_nan_iat_fail",
        lambda b, k: _header_bytes(
            b, k, ('{"alg":"ES256",' + _GOOD_HEADER_JSON.format(kid=k.ec["kid"]) + ',"iat":NaN}').encode()
        ),
        Code.SIGNATURE_INVALID,
    ),
    Case("header_unknown_parameter_fail", lambda b, k: k.sign_es(b, cty="json"), Code.SIGNATURE_INVALID),
    Case("header_typ_jwt_fail", lambda b, k: k.sign_es(b, typ="JWT"), Code.SIGNATURE_INVALID),
    Case(
        "header_typ_absent_fail",
        lambda b, k: forge(b, {"alg": "ES256", "kid": k.ec["kid"]}, lambda m: es256_raw(k.ec, m)),
        Code.SIGNATURE_INVALID,
    ),
    Case("header_iat_string_fail", lambda b, k: k.sign_es(b, iat="1795514400"), Code.SIGNATURE_INVALID),
    Case("header_iat_bool_fail", lambda b, k: k.sign_es(b, iat=True), Code.SIGNATURE_INVALID),
    Case("header_iat_float_fail", lambda b, k: k.sign_es(b, iat=1795514400.5), Code.SIGNATURE_INVALID),
    Case("header_iat_negative_fail", lambda b, k: k.sign_es(b, iat=-1), Code.SIGNATURE_INVALID),
    # a Bundle RFC 8785 cannot canonicalise (the strict parser refuses it earlier in intake)
    Case("bundle_integer_beyond_2_53_fail", lambda b, k: {**k.sign_es(b), "total": 2**60}, Code.INVALID_JSON),
]


def _cases(prefix: str) -> list[Any]:
    chosen = [c for c in CORPUS if c.name.startswith(prefix + "_")]
    assert chosen, prefix
    return [pytest.param(c, id=c.name) for c in chosen]


def _other_cases() -> list[Any]:
    grouped = re.compile(r"s\d+_")
    return [pytest.param(c, id=c.name) for c in CORPUS if not grouped.match(c.name)]


@pytest.fixture(scope="module")
def corpus_keys() -> Keys:
    return Keys(ec=ec_private_jwk(), ed=ed_private_jwk(), other_ec=ec_private_jwk())


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Fail on any outbound connection or DNS lookup while a signature is being checked."""
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise AssertionError("signature verification tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield attempts
    assert attempts == []


def assert_refused(case: Case, keys: Keys) -> None:
    lookup = RecordingLookup(entry_for(keys.ec, "RM1"), entry_for(keys.ed, "RGT"))
    bundle = case.mutate(sample_bundle(), keys)
    with pytest.raises(HandoverError) as refusal:
        verify_bundle_signature(bundle, lookup)
    assert refusal.value.code == case.expected, refusal.value.text
    assert all(isinstance(kid, str) and KID_SHAPE.fullmatch(kid) for kid in lookup.calls), lookup.calls
    assert len(lookup.calls) <= 1
    assert "1=1" not in refusal.value.text and "../" not in refusal.value.text, "refusals must not echo input"


def test_corpus_names_are_unique_and_end_in_fail() -> None:
    names = [c.name for c in CORPUS]
    assert len(names) == len(set(names))
    assert all(name.endswith("_fail") for name in names)


@pytest.mark.parametrize("case", _cases("s1"))
def test_s1_missing_signature_refused(case: Case, corpus_keys: Keys) -> None:
    assert_refused(case, corpus_keys)


@pytest.mark.parametrize("case", _cases("s2"))
def test_s2_alg_none_refused(case: Case, corpus_keys: Keys) -> None:
    assert_refused(case, corpus_keys)


@pytest.mark.parametrize("case", _cases("s3"))
def test_s3_hmac_with_public_key_refused(case: Case, corpus_keys: Keys) -> None:
    assert_refused(case, corpus_keys)


@pytest.mark.parametrize("case", _cases("s4"))
def test_s4_alg_other_than_pinned_refused(case: Case, corpus_keys: Keys) -> None:
    assert_refused(case, corpus_keys)


@pytest.mark.parametrize("case", _cases("s5"))
def test_s5_bad_kid_refused_without_lookup_outside_memory(case: Case, corpus_keys: Keys) -> None:
    assert_refused(case, corpus_keys)


@pytest.mark.parametrize("case", _cases("s6"))
def test_s6_key_from_header_refused_without_network(case: Case, corpus_keys: Keys, no_network: list[object]) -> None:
    assert_refused(case, corpus_keys)


@pytest.mark.parametrize("case", _cases("s7"))
def test_s7_b64_and_crit_refused(case: Case, corpus_keys: Keys) -> None:
    assert_refused(case, corpus_keys)


@pytest.mark.parametrize("case", _cases("s8"))
def test_s8_changed_payload_refused(case: Case, corpus_keys: Keys) -> None:
    assert_refused(case, corpus_keys)


@pytest.mark.parametrize("case", _cases("s14"))
def test_s14_non_canonical_signing_input_refused(case: Case, corpus_keys: Keys) -> None:
    assert_refused(case, corpus_keys)


@pytest.mark.parametrize("case", _cases("s15"))
def test_s15_der_or_wrong_length_signature_refused(case: Case, corpus_keys: Keys) -> None:
    assert_refused(case, corpus_keys)


@pytest.mark.parametrize("case", _cases("s16"))
def test_s16_json_serialisation_and_multiple_signatures_refused(case: Case, corpus_keys: Keys) -> None:
    assert_refused(case, corpus_keys)


@pytest.mark.parametrize("case", _other_cases())
def test_malformed_envelope_or_header_refused(case: Case, corpus_keys: Keys) -> None:
    assert_refused(case, corpus_keys)


def test_s5_lookup_is_only_the_callable(corpus_keys: Keys, no_network: list[object]) -> None:
    """Well-formed kids reach the in-memory callable exactly once; nothing else is consulted."""
    lookup = RecordingLookup()
    with pytest.raises(HandoverError) as refusal:
        verify_bundle_signature(corpus_keys.sign_es(sample_bundle()), lookup)
    assert refusal.value.code == Code.UNKNOWN_KEY
    assert lookup.calls == [corpus_keys.ec["kid"]]


def test_revocation_is_left_to_the_caller(corpus_keys: Keys) -> None:
    revoked_at = datetime(2026, 11, 24, 9, 0, 0, tzinfo=UTC)
    entry = PublicKeyEntry(
        corpus_keys.ec["kid"],
        "ES256",
        "RM1",
        "revoked",
        revoked_at,
        {k: v for k, v in corpus_keys.ec.items() if k != "d"},
    )
    verified = verify_bundle_signature(
        sign_bundle(sample_bundle(), corpus_keys.ec, "RM1", when=WHEN), lambda kid: entry
    )
    assert verified.signed_at == WHEN
    assert entry.is_revoked_at(verified.signed_at)
    assert not entry.is_revoked_at(datetime(2026, 11, 24, 8, 59, 59, tzinfo=UTC))
    assert entry.is_revoked_at(None)
    assert not entry_for(corpus_keys.ec, "RM1", "retiring").is_revoked_at(WHEN)
