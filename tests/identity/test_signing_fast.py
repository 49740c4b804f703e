"""The direct joserfc calls in signing.py and tokens.py (`verify_detached`, `_sign_detached`, `_verify_signature`)
give exactly the answers of the ``jws.deserialize_compact`` / ``serialize_compact`` calls they replace: the same
refusal (code and text) for every input, hand-made corpus and generated, and the same signed text."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jws
from joserfc.util import urlsafe_b64decode

from service.errors import HandoverError
from service.identity import signing, tokens
from service.identity.signing import sign_bundle, verify_bundle_signature
from service.identity.tokens import verify_bearer_token
from tests.identity.signing_support import (
    RecordingLookup,
    b64u,
    ec_private_jwk,
    ed_private_jwk,
    entry_for,
    es256_raw,
    forge,
    sample_bundle,
)
from tests.identity.test_signing_refusals import CORPUS, Keys

Outcome = tuple[str, str, str]


def _reference_verify_detached(
    header_b64: str, header: dict[str, Any], payload_b64: bytes, signature_b64: str, *, key: Any, registry: Any
) -> None:
    del header  # joserfc parses it again
    jws.deserialize_compact(
        f"{header_b64}..{signature_b64}", key, registry=registry, payload=urlsafe_b64decode(payload_b64)
    )


def _reference_verify_signature(parts: list[str], header: dict[str, Any], key: Any, registry: Any) -> None:
    del header
    jws.deserialize_compact(".".join(parts), key, registry=registry)


def _outcome(call: Callable[[], object]) -> Outcome:
    try:
        result = call()
    except HandoverError as err:
        return ("refused", str(err.code), err.text)
    return ("accepted", repr(result), "")


def _both(monkeypatch: pytest.MonkeyPatch, call: Callable[[], object]) -> tuple[Outcome, Outcome]:
    fast = _outcome(call)
    with monkeypatch.context() as patch:
        patch.setattr(signing, "verify_detached", _reference_verify_detached)
        patch.setattr(tokens, "_verify_signature", _reference_verify_signature)
        reference = _outcome(call)
    return fast, reference


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(ec=ec_private_jwk(), ed=ed_private_jwk(), other_ec=ec_private_jwk())


@pytest.fixture(scope="module")
def lookup(keys: Keys) -> RecordingLookup:
    return RecordingLookup(entry_for(keys.ec, "RM1"), entry_for(keys.ed, "RGT"))


@pytest.fixture
def patcher() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_refusal_corpus_answers_as_joserfc(
    case: Any, keys: Keys, lookup: RecordingLookup, patcher: pytest.MonkeyPatch
) -> None:
    bundle = case.mutate(sample_bundle(), keys)
    fast, reference = _both(patcher, lambda: verify_bundle_signature(bundle, lookup))
    assert fast == reference


def test_valid_signatures_verify_as_with_joserfc(
    keys: Keys, lookup: RecordingLookup, patcher: pytest.MonkeyPatch
) -> None:
    for private, owner in ((keys.ec, "RM1"), (keys.ed, "RGT")):
        bundle = sign_bundle(sample_bundle(), private, owner)
        fast, reference = _both(patcher, lambda b=bundle: verify_bundle_signature(b, lookup))
        assert fast == reference and fast[0] == "accepted"


_B64URL_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_HEADER_VARIANTS = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from(["ES256", "Ed25519", "HS256", 7]),
        "typ": st.sampled_from(["handover+jws", "JWT", 1]),
        "iat": st.sampled_from([1764000000, -1, "1764000000", True, 2**40]),
        "crit": st.sampled_from([["iat"], []]),
    },
)


def _edit(segment: str, position: int, char: str) -> str:
    if not segment:
        return char
    index = position % len(segment)
    return segment[:index] + char + segment[index + 1 :]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    header=_HEADER_VARIANTS,
    padding=st.sampled_from([0, 1, 200, 380, 600]),
    signature_length=st.sampled_from([64, 63, 65, 0, 800]),
    edit=st.none() | st.tuples(st.sampled_from([0, 2]), st.integers(0, 2000), st.sampled_from(_B64URL_CHARS)),
)
def test_generated_detached_signatures_answer_as_joserfc(
    keys: Keys,
    lookup: RecordingLookup,
    patcher: pytest.MonkeyPatch,
    *,
    header: dict[str, Any],
    padding: int,
    signature_length: int,
    edit: tuple[int, int, str] | None,
) -> None:
    full = {"alg": "ES256", "kid": keys.ec["kid"], "typ": "handover+jws", **header}
    raw = json.dumps(full).encode()
    raw = raw[:1] + b" " * padding + raw[1:]  # pushes the header segment past joserfc's 512-byte limit

    def signer(message: bytes) -> bytes:
        good = es256_raw(keys.ec, message)
        return (good * 13)[:signature_length]

    bundle = forge(sample_bundle(), raw, signer)
    if edit is not None:
        parts = base64.b64decode(bundle["signature"]["data"]).decode().split(".")
        parts[edit[0]] = _edit(parts[edit[0]], edit[1], edit[2])
        bundle["signature"]["data"] = base64.b64encode(".".join(parts).encode()).decode()
    fast, reference = _both(patcher, lambda: verify_bundle_signature(bundle, lookup))
    assert fast == reference


def _token(private: dict[str, Any], header: dict[str, Any] | bytes, claims: dict[str, Any]) -> str:
    raw_header = header if isinstance(header, bytes) else json.dumps(header).encode()
    signing_input = f"{b64u(raw_header)}.{b64u(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64u(es256_raw(private, signing_input.encode()))}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    header=st.fixed_dictionaries(
        {}, optional={"alg": st.sampled_from(["ES256", "Ed25519", "none"]), "typ": st.sampled_from(["JWT", "jwt"])}
    ),
    padding=st.sampled_from([0, 1, 300, 500, 2000]),
    signature_extra=st.sampled_from([0, 1, 2, 3, 1100]),
    edit=st.none() | st.tuples(st.integers(0, 2), st.integers(0, 5000), st.sampled_from(_B64URL_CHARS)),
)
def test_generated_bearer_tokens_answer_as_joserfc(
    keys: Keys,
    lookup: RecordingLookup,
    patcher: pytest.MonkeyPatch,
    *,
    header: dict[str, Any],
    padding: int,
    signature_extra: int,
    edit: tuple[int, int, str] | None,
) -> None:
    now = int(time.time())
    claims = {"iss": "RM1", "sub": "RM1", "aud": "handover", "iat": now, "exp": now + 60, "jti": "j-1"}
    full = {"alg": "ES256", "kid": keys.ec["kid"], **header}
    raw = json.dumps(full).encode()
    token = _token(keys.ec, raw[:1] + b" " * padding + raw[1:], claims) + "A" * signature_extra
    if edit is not None:
        parts = token.split(".")
        parts[edit[0]] = _edit(parts[edit[0]], edit[1], edit[2])
        token = ".".join(parts)
    moment = signing.datetime.fromtimestamp(now, signing.UTC)
    fast, reference = _both(patcher, lambda: verify_bearer_token(token, lookup, now=moment))
    assert fast == reference


@pytest.mark.parametrize("private_key", [ec_private_jwk, ed_private_jwk], ids=["ES256", "Ed25519"])
def test_signing_writes_what_joserfc_writes(private_key: Callable[[], dict[str, Any]]) -> None:
    private = private_key()
    key, alg, kid = signing._private_key(private)
    header = {"alg": alg, "kid": kid, "typ": signing.JWS_TYP, "iat": 1764000000}
    payload = signing.canonical_bytes(sample_bundle())
    ours = signing._sign_detached(dict(header), payload, key, signing._REGISTRIES[alg])
    theirs = jws.detach_content(jws.serialize_compact(dict(header), payload, key, registry=signing._REGISTRIES[alg]))
    assert ours.split(".")[:2] == theirs.split(".")[:2], "the same header segment, detached"
    if alg == "Ed25519":
        assert ours == theirs, "Ed25519 is deterministic: byte for byte the same"
    public = signing._import_public(private["kty"], private["crv"], private["x"], private.get("y"), alg)
    for text in (ours, theirs):
        jws.deserialize_compact(text, public, registry=signing._REGISTRIES[alg], payload=payload)


def _non_canonical(segment: str) -> str:
    """`segment` with its last character's unused low bits set (the same bytes to a lenient decoder)."""
    if len(segment) % 4 in (2, 3):
        last = _B64URL_CHARS.index(segment[-1])
        return segment[:-1] + _B64URL_CHARS[last | (0b1111 if len(segment) % 4 == 2 else 0b11)]
    return segment + "A"  # no unused bits: one more character is not base64url of whole bytes either


@pytest.mark.parametrize("segment", [0, 1, 2], ids=["header", "claims", "signature"])
def test_non_canonical_token_segments_answer_as_joserfc(
    keys: Keys, lookup: RecordingLookup, patcher: pytest.MonkeyPatch, segment: int
) -> None:
    now = int(time.time())
    claims = {"iss": "RM1", "sub": "RM1", "aud": "handover", "iat": now, "exp": now + 60, "jti": "j-2"}
    moment = signing.datetime.fromtimestamp(now, signing.UTC)
    for padding in range(4):  # every length modulo 4
        raw = json.dumps({"alg": "ES256", "kid": keys.ec["kid"]}).encode()
        parts = _token(keys.ec, raw[:1] + b" " * padding + raw[1:], {**claims, "x": "y" * padding}).split(".")
        parts[segment] = _non_canonical(parts[segment])
        fast, reference = _both(patcher, lambda p=parts: verify_bearer_token(".".join(p), lookup, now=moment))
        assert fast == reference


@pytest.mark.parametrize("segment", [0, 2], ids=["header", "signature"])
def test_non_canonical_detached_segments_answer_as_joserfc(
    keys: Keys, lookup: RecordingLookup, patcher: pytest.MonkeyPatch, segment: int
) -> None:
    for padding in range(4):
        raw = json.dumps(keys.header()).encode()
        bundle = forge(sample_bundle(), raw[:1] + b" " * padding + raw[1:], lambda m: es256_raw(keys.ec, m))
        parts = base64.b64decode(bundle["signature"]["data"]).decode().split(".")
        parts[segment] = _non_canonical(parts[segment])
        bundle["signature"]["data"] = base64.b64encode(".".join(parts).encode()).decode()
        fast, reference = _both(patcher, lambda b=bundle: verify_bundle_signature(b, lookup))
        assert fast == reference
