"""POST /fhir/$canonicalize: an onboarding aid that shows an integrator the hub's view of their Bundle.

It answers with the RFC 8785 canonical bytes of the posted Bundle (top-level ``signature`` removed) and their
SHA-256, and, for a signed Bundle, a ``signature_check`` saying whether the signature verifies and, if not,
why: a refused header parameter (``b64``, ``jku`` ...), an unknown ``kid``, a DER-encoded ECDSA signature, an
attached payload that differs from the canonical bytes, or a signature made over JSON that is not RFC 8785.

No authentication: it stores nothing, logs nothing of the body, and returns only what the caller sent, plus
facts the public registry already states (whether a kid is registered, to whom, in which state). The body
limit, strict JSON and the content type are enforced as on ``$process-message``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any

import rfc8785
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from service.errors import Code, HandoverError
from service.http.body import read_body
from service.http.context import services
from service.http.headers import require_fhir_json
from service.identity.registry import Registry
from service.identity.signing import (
    JWS_TYP,
    SUPPORTED_ALGS,
    KeyLookup,
    PublicKeyEntry,
    canonical_bytes,
    verify_bundle_signature,
)
from service.strictjson import parse_strict_json
from service.terminology import ODS_SYSTEM

SIGNING_INPUT_HINT = "BASE64URL(protected header) + '.' + BASE64URL(canonical bytes)"
DIAGNOSE_MAX_BYTES = 1024 * 1024
"""Largest canonical payload for which alternative signing inputs are tried to explain a bad signature."""

_ALLOWED_HEADER = ("alg", "kid", "typ", "iat")
_KEY_SOURCES = ("jku", "x5u", "jwk", "x5c")
_RAW_SIGNATURE_BYTES = 64


async def canonicalize(request: web.Request) -> web.Response:
    """200 with the canonical form of the posted Bundle (see the module docstring); refuses 415 for another
    content type, 413 above the body limit, 400 ``invalid-json`` for anything strict JSON or RFC 8785 refuses,
    and 422 ``not-a-message`` when the body is not a Bundle."""
    hub = services(request)
    require_fhir_json(request)
    doc = parse_strict_json(await read_body(request, hub.settings.max_body_bytes))
    if doc.get("resourceType") != "Bundle":
        raise HandoverError(Code.NOT_A_MESSAGE, "Post a FHIR Bundle to see its canonical form", "Bundle")
    try:
        canonical = canonical_bytes(doc)
    except rfc8785.CanonicalizationError:
        raise HandoverError(Code.INVALID_JSON, "the Bundle holds a value RFC 8785 cannot represent") from None
    result: dict[str, Any] = {
        "canonical": canonical.decode("utf-8"),
        "canonical_base64": base64.b64encode(canonical).decode("ascii"),
        "canonical_length": len(canonical),
        "sha256": hashlib.sha256(canonical).hexdigest(),
        "signature_removed": "signature" in doc,
        "signing_input_hint": SIGNING_INPUT_HINT,
    }
    if "signature" in doc:
        result["signature_check"] = check_signature(doc, canonical, hub.registry.current)  # one snapshot
    body = json.dumps(result, ensure_ascii=False).encode("utf-8")
    return web.Response(status=200, body=body, content_type="application/json", charset="utf-8")


def check_signature(doc: Mapping[str, Any], canonical: bytes, registry: Registry) -> dict[str, Any]:
    """What is right and wrong with ``Bundle.signature`` of `doc`, whose canonical bytes are `canonical`.

    Verifies against a key only when the header's ``kid`` is in `registry`; otherwise runs every check
    that needs no key and reports the kid as unknown.
    """
    hints: list[str] = []
    parts = _detached_parts(doc.get("signature"), hints)
    header = _header(parts[0], hints) if parts else None
    kid = header.get("kid") if header is not None else None
    entry = registry.key(kid) if isinstance(kid, str) else None
    if header is not None:
        _header_hints(header, entry, hints)
    if parts and parts[1]:
        _attached_payload_hint(parts[1], canonical, hints)

    keys: KeyLookup = registry.key if entry is not None else (lambda _kid: None)
    error: dict[str, str] | None = None
    signer_matches_sender: bool | None = None
    try:
        verified = verify_bundle_signature(doc, keys)
    except HandoverError as refused:
        error = {"code": refused.code.value, "text": refused.text}
        if entry is not None and parts is not None and refused.code is Code.SIGNATURE_INVALID:
            _bad_signature_hints(doc, canonical, entry, parts, hints)
    else:
        sender = _sender_ods(doc)
        signer_matches_sender = verified.owner_ods == sender == verified.who_ods
        if not signer_matches_sender:
            hints.append(
                f"the signature verifies, but the key belongs to {verified.owner_ods}: MessageHeader.sender and "
                "Bundle.signature.who must both name that organisation (else 403 sender-mismatch)"
            )
        if verified.key is not None and verified.key.is_revoked_at(verified.signed_at):
            hints.append("the key was revoked before this signature's iat: the hub refuses it (403 key-revoked)")
    _who_hint(doc, hints)
    return {
        "valid": error is None,
        "protected_header": header,
        "kid_registered": entry is not None,
        "key": None if entry is None else {"owner": entry.owner_ods, "alg": entry.alg, "status": entry.status},
        "error": error,
        "signer_matches_sender": signer_matches_sender,
        "hints": hints,
    }


def _detached_parts(signature: object, hints: list[str]) -> tuple[str, str, str] | None:
    """The three segments of the compact JWS in ``signature.data``, leniently, for diagnosis only."""
    if not isinstance(signature, Mapping):
        hints.append("Bundle.signature must be one object (not a list of signatures)")
        return None
    if signature.get("sigFormat") != "application/jose":
        hints.append("Bundle.signature.sigFormat must be application/jose")
    data = signature.get("data")
    if not isinstance(data, str) or not data:
        hints.append("Bundle.signature.data must hold base64 of the compact detached JWS header..signature")
        return None
    if data.startswith("eyJ") and data.count(".") == 2:
        hints.append("Bundle.signature.data holds the compact JWS itself: it must be standard base64 of that text")
        compact = data
    else:
        try:
            compact = base64.b64decode(data.encode("ascii"), validate=True).decode("ascii")
        except (UnicodeError, binascii.Error):
            hints.append("Bundle.signature.data is not standard base64 (A-Z a-z 0-9 + /, padded with =)")
            return None
    if compact.lstrip().startswith("{"):
        hints.append("JWS JSON serialisation is not accepted: use the compact form header..signature")
        return None
    segments = compact.split(".")
    if len(segments) != 3:
        hints.append("the JWS must have exactly three dot-separated segments: header..signature")
        return None
    return segments[0], segments[1], segments[2]


def _b64url(segment: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (ValueError, binascii.Error):
        return None


def _header(header_b64: str, hints: list[str]) -> dict[str, Any] | None:
    raw = _b64url(header_b64)
    try:
        header = json.loads(raw.decode("utf-8")) if raw is not None else None
    except ValueError:
        header = None
    if not isinstance(header, dict):
        hints.append("the protected header is not base64url of a JSON object")
        return None
    return header


def _header_hints(header: Mapping[str, Any], entry: PublicKeyEntry | None, hints: list[str]) -> None:
    if "b64" in header or "crit" in header:
        hints.append(
            "the header has b64/crit: unencoded payloads (RFC 7797) are not used; remove both and sign "
            + SIGNING_INPUT_HINT
        )
    hints.extend(
        f"the header has {name}: keys come only from the network registry; remove it"
        for name in _KEY_SOURCES
        if name in header
    )
    others = sorted(set(header) - {*_ALLOWED_HEADER, "b64", "crit", *_KEY_SOURCES})
    if others:
        hints.append("the header may carry only alg, kid, typ and iat; remove " + ", ".join(others))
    alg = header.get("alg")
    if alg == "EdDSA":
        hints.append('alg must be "Ed25519" (RFC 9864), not "EdDSA"')
    elif alg not in SUPPORTED_ALGS:
        hints.append("alg must be ES256 (or Ed25519 where your key is registered for it)")
    elif entry is not None and alg != entry.alg:
        hints.append(f"the key registered for this kid is pinned to {entry.alg}, but the header says {alg}")
    if header.get("typ") != JWS_TYP:
        hints.append(f'typ must be "{JWS_TYP}"')
    kid = header.get("kid")
    if not isinstance(kid, str) or len(kid) != 43:
        hints.append("kid must be the RFC 7638 SHA-256 thumbprint of your public JWK (43 base64url characters)")
    elif entry is None:
        hints.append(
            "kid is not in the network registry: the signature cannot be checked here; have your public JWKS "
            "registered, and check that kid is the RFC 7638 thumbprint of that key"
        )
    elif entry.status != "active":
        hints.append(f"the key for this kid is {entry.status}: sign new messages with your active key")


def _attached_payload_hint(payload_b64: str, canonical: bytes, hints: list[str]) -> None:
    payload = _b64url(payload_b64)
    if payload == canonical:
        hints.append("the payload is attached: detach it, so that data is base64 of header..signature")
        return
    if payload is None:
        hints.append("the JWS carries a payload segment that is not base64url; it must be empty (detached)")
        return
    offset = next((i for i, (a, b) in enumerate(zip(payload, canonical, strict=False)) if a != b), None)
    if offset is None:
        offset = min(len(payload), len(canonical))
    hints.append(
        f"the attached payload is not the canonical bytes: they first differ at byte offset {offset} "
        f"(payload {len(payload)} bytes, canonical {len(canonical)} bytes); sign the canonical bytes and detach"
    )


def _bad_signature_hints(
    doc: Mapping[str, Any], canonical: bytes, entry: PublicKeyEntry, parts: tuple[str, str, str], hints: list[str]
) -> None:
    """Explain a signature that does not verify with the registered key by finding what it does verify over."""
    header_b64, _, signature_b64 = parts
    raw = _b64url(signature_b64)
    if raw is None:
        return
    if entry.alg == "ES256" and len(raw) != _RAW_SIGNATURE_BYTES:
        try:
            r, s = decode_dss_signature(raw)
        except ValueError:
            return
        hints.append("the ES256 signature is DER-encoded: JWS needs the 64-byte raw R||S form")
        raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if len(raw) != _RAW_SIGNATURE_BYTES or len(canonical) > DIAGNOSE_MAX_BYTES:
        return
    prefix = header_b64.encode("ascii") + b"."
    payload = _b64url_text(canonical)
    if _verifies(entry, prefix + payload, raw):
        return  # only the encoding of the signature was wrong: the DER hint says it all
    unsigned = {k: v for k, v in doc.items() if k != "signature"}
    candidates: list[tuple[str, bytes]] = [
        ("the canonical bytes themselves instead of their base64url (b64:false style)", prefix + canonical),
    ]
    for label, text in (
        ("JSON with sorted keys but not RFC 8785 (non-ASCII escaped as \\u)", _dumps(unsigned, True, True)),
        ("JSON with sorted keys but not RFC 8785 (number or escape forms differ)", _dumps(unsigned, True, False)),
        ("compact JSON with the keys in the order sent, not sorted", _dumps(unsigned, False, False)),
        ("JSON with spaces after ':' and ','", json.dumps(unsigned).encode("utf-8")),
    ):
        candidates.append((label, prefix + _b64url_text(text)))
    signature = doc.get("signature")
    if isinstance(signature, Mapping):
        with_signature = {**unsigned, "signature": {k: v for k, v in signature.items() if k != "data"}}
        candidates.append(
            ("the Bundle including Bundle.signature (without data)", prefix + _canonical_b64url(with_signature))
        )
    for label, signing_input in candidates:
        if signing_input != prefix + payload and _verifies(entry, signing_input, raw):
            hints.append(f"the signature verifies over {label}: sign {SIGNING_INPUT_HINT} instead")
            return
    hints.append(
        "the signature does not verify over these canonical bytes with the key registered for this kid: check "
        f"that you signed {SIGNING_INPUT_HINT} with the private key of that kid, and compare your canonical "
        "bytes with 'canonical' (and their SHA-256)"
    )


def _dumps(value: Mapping[str, Any], sort_keys: bool, ensure_ascii: bool) -> bytes:
    return json.dumps(value, sort_keys=sort_keys, ensure_ascii=ensure_ascii, separators=(",", ":")).encode("utf-8")


def _canonical_b64url(value: Mapping[str, Any]) -> bytes:
    """BASE64URL of the RFC 8785 form of `value` (empty if it has none)."""
    try:
        return _b64url_text(bytes(rfc8785.dumps(value)))
    except rfc8785.CanonicalizationError:
        return b""


def _b64url_text(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _verifies(entry: PublicKeyEntry, signing_input: bytes, raw: bytes) -> bool:
    """Whether the 64-byte `raw` signature verifies over `signing_input` with the registered key."""
    jwk = entry.public_jwk
    try:
        x = _b64url(str(jwk.get("x")))
        if x is None:
            return False
        if entry.alg == "Ed25519":
            ed25519.Ed25519PublicKey.from_public_bytes(x).verify(raw, signing_input)
            return True
        y = _b64url(str(jwk.get("y")))
        if y is None:
            return False
        numbers = ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1())
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        numbers.public_key().verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def _sender_ods(doc: Mapping[str, Any]) -> str | None:
    entries = doc.get("entry")
    first = entries[0] if isinstance(entries, list) and entries else None
    resource = first.get("resource") if isinstance(first, Mapping) else None
    sender = resource.get("sender") if isinstance(resource, Mapping) else None
    return _ods(sender)


def _ods(reference: object) -> str | None:
    identifier = reference.get("identifier") if isinstance(reference, Mapping) else None
    if isinstance(identifier, Mapping) and identifier.get("system") == ODS_SYSTEM:
        value = identifier.get("value")
        return value if isinstance(value, str) else None
    return None


def _who_hint(doc: Mapping[str, Any], hints: list[str]) -> None:
    signature = doc.get("signature")
    who = _ods(signature.get("who")) if isinstance(signature, Mapping) else None
    sender = _sender_ods(doc)
    if sender is not None and who != sender:
        hints.append(
            "Bundle.signature.who must identify the sender by ODS code "
            f"(identifier.system {ODS_SYSTEM}, value {sender}, as in MessageHeader.sender)"
        )
