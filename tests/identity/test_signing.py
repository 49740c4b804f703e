"""Specification of service/identity/signing.py: canonical form, detached JWS sign/verify and interoperability with
the independent conformance signer (hosign). The S1-S16 refusal corpus is test_signing_refusals.py."""

from __future__ import annotations

import base64
import copy
import hashlib
import importlib
import json
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jwk, jws

from service.identity.signing import (
    VerifiedSignature,
    canonical_bytes,
    payload_sha256,
    sign_bundle,
    sign_compact_jwt,
    thumbprint,
    verify_bundle_signature,
)
from tests.identity.signing_support import (
    CONFORMANCE_DIR,
    WHEN,
    RecordingLookup,
    ec_private_jwk,
    ed_private_jwk,
    entry_for,
    independent_verify,
    sample_bundle,
    unb64u,
)

# ---------------------------------------------------------------- the independent signer from /work/shared


@pytest.fixture(scope="module")
def hosign() -> ModuleType:
    if not (CONFORMANCE_DIR / "hosign.py").is_file():
        pytest.skip(f"conformance signer not found in {CONFORMANCE_DIR} (set HANDOVER_CONFORMANCE_DIR)")
    if str(CONFORMANCE_DIR) not in sys.path:
        sys.path.insert(0, str(CONFORMANCE_DIR))
    return importlib.import_module("hosign")  # located at run time


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
