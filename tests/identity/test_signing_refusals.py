"""The S1-S16 refusal corpus of RELIABILITY-SECURITY.md against service/identity/signing.py: every named forgery or
malformed signature (*_fail) is refused with its code, without a network lookup or echoing input."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from service.errors import Code, HandoverError
from service.identity.signing import (
    PublicKeyEntry,
    sign_bundle,
    verify_bundle_signature,
)
from tests.identity.signing_support import (
    KID_SHAPE,
    WHEN,
    RecordingLookup,
    b64u,
    detached_parts,
    ec_key,
    ec_private_jwk,
    ed25519_sign,
    ed_private_jwk,
    entry_for,
    es256_der,
    es256_raw,
    forge,
    sample_bundle,
    unb64u,
    with_data,
)

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
        ec_key(k.ec)
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
