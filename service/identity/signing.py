"""Canonical form and detached-JWS signatures of message Bundles (CONTRACT.md section 5).

This module owns three things and nothing else:

* the canonical bytes of a Bundle: RFC 8785 (JCS) of the Bundle with top-level ``signature`` removed, and
  their SHA-256 (the ``sha256`` of every receipt);
* ``Bundle.signature``: a compact detached JWS (RFC 7515 appendix F, ``b64`` left at its default) over
  those bytes, ``header..signature``, base64-encoded into ``Bundle.signature.data`` with
  ``sigFormat application/jose``; protected header ``{"alg", "kid", "typ": "handover+jws", "iat"}``;
* small helpers the rest of the service needs for the same keys: RFC 7638 thumbprints (our ``kid``)
  and compact JWTs for RFC 7523-style bearer assertions.

Algorithms: ``ES256`` (P-256, raw R||S, mandatory) and ``Ed25519`` (RFC 9864 name, optional). Each
registered key pins exactly one of them; ``EdDSA``, ``none``, HS*, RS*, ES384 and anything else are refused.

joserfc 1.8 does the JOSE work: it knows ES256 and the RFC 9864 ``Ed25519`` algorithm, signs ES256 as raw
R||S, encodes the header and base64url, and its registry (allowing exactly one algorithm) checks every header.
Since this module parses the compact form itself anyway, it calls those joserfc pieces directly
(`verify_detached`, `_sign_detached`) instead of ``jws.deserialize_compact``/``serialize_compact``, which would
parse and encode everything a second time; tests/identity/test_signing_fast.py holds them to joserfc's answers.
Before joserfc sees anything, this module does its own strict parse of ``signature.data`` and the protected
header (strict base64, exactly ``header..signature``, no duplicate keys, only the ``alg``/``kid``/``typ``/``iat``
parameters, ``kid`` shape, pinned ``alg``, 64-byte signature), because joserfc's defaults are lenient in ways
we must not be (it allows ``jku``, ``x5u``, ``jwk``, ``x5c``, duplicate header keys and attached payloads).

Verification here answers only "did the holder of this registered key sign these canonical bytes?". It
does NOT decide whether the key may be used: revocation (``status``/``revoked_at`` against ``iat``), ``iat``
skew, and binding the key's owner to ``MessageHeader.sender``, ``signature.who`` and the mTLS certificate
are the caller's job, using the returned `VerifiedSignature` and `PublicKeyEntry.is_revoked_at`. Keys come
only from the caller's in-memory `KeyLookup`; nothing here reads files, databases or URLs.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import rfc8785
from joserfc import jwk, jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jws import JWSRegistry
from joserfc.registry import HeaderParameter
from joserfc.util import json_b64encode, urlsafe_b64decode, urlsafe_b64encode

from service.canonical import canonical_json, canonical_json_of_plain
from service.errors import Code, HandoverError
from service.strictjson import unique_members

SIGNATURE_TYPE_SYSTEM = "urn:iso-astm:E1762-95:2013"
SIGNATURE_TYPE_CODE = "1.2.840.10065.1.12.1.5"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
SIG_FORMAT = "application/jose"
JWS_TYP = "handover+jws"
SUPPORTED_ALGS: frozenset[str] = frozenset({"ES256", "Ed25519"})

_KID = re.compile(r"[A-Za-z0-9_-]{43}")  # base64url of a SHA-256 thumbprint, used with fullmatch
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_ALLOWED_HEADER = frozenset({"alg", "kid", "typ", "iat"})
_KEY_SOURCE_HEADER = ("jku", "x5u", "jwk", "x5c")  # named in refusals; like everything outside _ALLOWED_HEADER,
_PAYLOAD_HEADER = ("crit", "b64")  # they are refused
_MAX_DATA_CHARS = 4096  # a detached ES256/Ed25519 JWS with our header is ~300 characters
_MAX_HEADER_CHARS = 1024
_MAX_IAT = 253402300799  # 9999-12-31T23:59:59Z
_SIG_BYTES = 64  # ES256 raw R||S and Ed25519 are both exactly 64 bytes


@dataclass(frozen=True)
class PublicKeyEntry:
    """A registered public signing key: its thumbprint ``kid``, pinned ``alg``, owner (ODS code or ``hub``),
    ``status`` (``active`` | ``retiring`` | ``revoked``), ``revoked_at`` when revoked, the public JWK, and
    ``retire_after`` when it was rotated out (a retiring key verifies only signatures made before it)."""

    kid: str
    alg: str
    owner_ods: str
    status: str
    revoked_at: datetime | None
    public_jwk: Mapping[str, Any] = field(hash=False)
    retire_after: datetime | None = None

    def is_revoked_at(self, moment: datetime | None) -> bool:
        """True if this key counts as revoked for a signature made at `moment`.

        A revoked key still verifies signatures made before ``revoked_at``; with no signing time known
        (`moment` None) a revoked key is treated as revoked.
        """
        if self.status != "revoked":
            return False
        return moment is None or self.revoked_at is None or self.revoked_at <= moment

    def verifies_at(self, moment: datetime | None) -> bool:
        """True if a signature made at `moment` (the header's ``iat`` / ``Bundle.timestamp``) may be accepted.

        ``active``: always. ``retiring``: only when `moment` is known and before ``retire_after`` (no
        ``retire_after`` = an open-ended overlap). ``revoked``: only when `moment` is known and before
        ``revoked_at`` (and before ``retire_after`` if the key was retiring when revoked). Anything else:
        never. `moment` is claimed by the signer, so callers must also bound it against their own clock
        (``iat`` skew, message age); that is what ends a retiring key's life in practice.
        """
        if self.status == "active":
            return True
        if moment is None or self.status not in ("retiring", "revoked"):
            return False
        if self.retire_after is not None and moment >= self.retire_after:
            return False
        return self.status == "retiring" or (self.revoked_at is not None and moment < self.revoked_at)


KeyLookup = Callable[[str], PublicKeyEntry | None]
"""In-memory key lookup by ``kid`` (e.g. `service.identity.registry.Registry.key`); None when unknown."""


@dataclass(frozen=True)
class VerifiedSignature:
    """What a valid signature proves: which registered key signed, with which algorithm, for whom, when.

    `signed_at` comes from the protected header's ``iat`` (None if absent); `who_ods` is the ODS value in
    ``Bundle.signature.who`` as sent (unchecked here); `key` is the registry entry used.
    """

    kid: str
    alg: str
    owner_ods: str
    signed_at: datetime | None
    who_ods: str | None = None
    key: PublicKeyEntry | None = field(default=None, compare=False, repr=False)
    payload_sha256: str = field(default="", compare=False)  # of the canonical bytes verified: never redone


class _HandoverJWSRegistry(JWSRegistry):
    # The body size is capped by the HTTP layer before parsing; joserfc's 128 kB default is too small for
    # discharge summaries, so its own cap here only bounds the base64url of the canonical payload.
    max_payload_length = 64 * 1024 * 1024


_REGISTRIES: dict[str, JWSRegistry] = {
    alg: _HandoverJWSRegistry(header_registry={"iat": HeaderParameter("Issued At", "int")}, algorithms=[alg])
    for alg in sorted(SUPPORTED_ALGS)
}


def canonical_bytes(bundle: Mapping[str, Any], *, plain: bool = False) -> bytes:
    """RFC 8785 bytes of `bundle` without its top-level ``signature``; `bundle` is not modified. `plain`: the
    caller knows the rest of `bundle` is plain in the sense of `service.canonical.canonical_json_of_plain`, so the
    walk that proves it is skipped.

    Raises rfc8785.CanonicalizationError (a ValueError) for values outside I-JSON (e.g. integers beyond
    ±(2^53-1), NaN).
    """
    unsigned = {k: v for k, v in bundle.items() if k != "signature"}
    return canonical_json_of_plain(unsigned) if plain else canonical_json(unsigned)


def payload_sha256(bundle: Mapping[str, Any]) -> str:
    """Lowercase hex SHA-256 of `canonical_bytes(bundle)`: the digest receipts and audit events carry."""
    return hashlib.sha256(canonical_bytes(bundle)).hexdigest()


def thumbprint(key: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint (base64url) of an EC or OKP JWK, public or private: our ``kid``."""
    kty = key.get("kty")
    if kty == "EC":
        names: tuple[str, ...] = ("crv", "kty", "x", "y")
    elif kty == "OKP":
        names = ("crv", "kty", "x")
    else:
        raise ValueError("only EC and OKP keys are supported")
    members = {name: key.get(name) for name in names}
    if not all(isinstance(value, str) for value in members.values()):
        raise ValueError(f"a {kty} JWK needs string members {', '.join(names)}")
    return jwk.thumbprint(members)


def sign_bundle(
    bundle: Mapping[str, Any], private_jwk: Mapping[str, Any], signer_ods: str, *, when: datetime | None = None
) -> dict[str, Any]:
    """Return a deep copy of `bundle` with ``Bundle.signature`` set as CONTRACT.md section 5 describes.

    The key is an EC P-256 (ES256) or OKP Ed25519 (Ed25519) private JWK; its ``kid`` is its thumbprint.
    `when` (timezone-aware, default now) gives both ``signature.when`` and the header's ``iat``.
    Raises ValueError for an unusable key, a naive `when` or an empty `signer_ods`.
    """
    return sign_own_bundle(
        copy.deepcopy({k: v for k, v in bundle.items() if k != "signature"}), private_jwk, signer_ods, when=when
    )


def sign_own_bundle(
    bundle: dict[str, Any],
    private_jwk: Mapping[str, Any],
    signer_ods: str,
    *,
    when: datetime | None = None,
    plain: bool = False,
) -> dict[str, Any]:
    """`sign_bundle` for a Bundle the caller has just built and hands over: signed in place, not copied (the
    hub's receipts and alerts). `plain`: the caller knows the Bundle is plain in the sense of
    `service.canonical.canonical_json_of_plain`, so its canonical bytes need no proving walk."""
    if not isinstance(signer_ods, str) or not signer_ods:
        raise ValueError("signer_ods must be a non-empty string")
    moment = _utc_seconds(when)
    key, alg, kid = _private_key(private_jwk)
    header = {"alg": alg, "kid": kid, "typ": JWS_TYP, "iat": int(moment.timestamp())}
    detached = _sign_detached(header, canonical_bytes(bundle, plain=plain), key, _REGISTRIES[alg])
    signed = bundle
    signed["signature"] = {
        "type": [{"system": SIGNATURE_TYPE_SYSTEM, "code": SIGNATURE_TYPE_CODE}],
        "when": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "who": {"identifier": {"system": ODS_SYSTEM, "value": signer_ods}},
        "sigFormat": SIG_FORMAT,
        "data": base64.b64encode(detached.encode("ascii")).decode("ascii"),
    }
    return signed


def sign_compact_jwt(claims: Mapping[str, Any], private_jwk: Mapping[str, Any]) -> str:
    """A compact JWT over `claims`, header ``{"alg", "kid", "typ": "JWT"}``, signed ES256 or Ed25519."""
    key, alg, kid = _private_key(private_jwk)
    header = {"alg": alg, "kid": kid, "typ": "JWT"}
    return jwt.encode(header, dict(claims), key, registry=_REGISTRIES[alg], default_type=None)


def verify_bundle_signature(bundle: Mapping[str, Any], keys: KeyLookup) -> VerifiedSignature:
    """Check ``Bundle.signature`` against the canonical bytes of `bundle`, with a key found only via `keys`.

    Refuses with HandoverError: SIGNATURE_MISSING (no signature or no data); SIGNATURE_INVALID (wrong
    sigFormat, not strict base64 of a compact detached ``header..signature``, JSON serialisation or several
    signatures, a header that is not a strict JSON object, any parameter other than alg/kid/typ/iat — so
    jku/x5u/jwk/x5c/crit/b64 —, typ other than handover+jws, alg other than the key's pinned one, a
    signature not exactly 64 raw bytes, or one that does not verify); UNKNOWN_KEY (kid not a string of 43
    base64url characters, or not known to `keys`, which is called only with well-formed kids);
    INVALID_JSON (the Bundle has values RFC 8785 cannot represent). Revocation and sender binding are left
    to the caller (see the module docstring).
    """
    signature = bundle.get("signature")
    if signature is None:
        raise HandoverError(Code.SIGNATURE_MISSING, "Bundle.signature is missing", "Bundle.signature")
    if isinstance(signature, list):
        raise _invalid("Bundle.signature must be one element; multiple signatures are not accepted")
    if not isinstance(signature, Mapping):
        raise _invalid("Bundle.signature must be an object")
    data = signature.get("data")
    if data is None or data == "":
        raise HandoverError(Code.SIGNATURE_MISSING, "Bundle.signature.data is missing", "Bundle.signature.data")
    if signature.get("sigFormat") != SIG_FORMAT:
        raise _invalid(f"Bundle.signature.sigFormat must be {SIG_FORMAT}", "Bundle.signature.sigFormat")

    compact = _decode_data(data)
    header_b64, signature_b64 = _split_detached(compact)
    header = _decode_header(header_b64)
    alg, signed_at = _check_header(header)

    kid = header.get("kid")
    if not isinstance(kid, str) or not _KID.fullmatch(kid):
        raise HandoverError(Code.UNKNOWN_KEY, "kid must be the RFC 7638 thumbprint of a registered key")
    entry = keys(kid)
    if entry is None or entry.kid != kid:
        raise HandoverError(Code.UNKNOWN_KEY, "kid does not name a key in the network registry")
    if alg != entry.alg:
        raise _invalid(f"alg must be {entry.alg}, the algorithm pinned for this key")

    raw_signature = _b64url(signature_b64, "the JWS signature")
    if len(raw_signature) != _SIG_BYTES:
        raise _invalid(f"the {alg} signature must be exactly {_SIG_BYTES} raw bytes (R||S for ES256, not DER)")

    try:
        payload = canonical_bytes(bundle)
    except rfc8785.CanonicalizationError as err:
        raise HandoverError(Code.INVALID_JSON, "the Bundle holds a value RFC 8785 cannot represent") from err
    try:
        verify_detached(
            header_b64,
            header,
            urlsafe_b64encode(payload),
            signature_b64,
            key=public_key(entry),
            registry=_REGISTRIES[alg],
        )
    except BadSignatureError as err:
        raise _invalid(
            "the signature does not verify over the RFC 8785 canonical form of the Bundle without signature; "
            "POST the Bundle to /fhir/$canonicalize to see the exact bytes and why"
        ) from err
    except (JoseError, ValueError) as err:
        raise _invalid("the JWS could not be verified") from err

    return VerifiedSignature(
        kid=kid,
        alg=alg,
        owner_ods=entry.owner_ods,
        signed_at=signed_at,
        who_ods=_who_ods(signature),
        key=entry,
        payload_sha256=hashlib.sha256(payload).hexdigest(),
    )


def _sign_detached(header: dict[str, Any], payload: bytes, key: jwk.Key, registry: JWSRegistry) -> str:
    """``jws.detach_content(jws.serialize_compact(header, payload, key, registry=registry))``, without the
    attached payload's base64url being joined and split again: the same checks, the same joserfc encoders and
    algorithm object, the same ``header..signature`` text (tests/identity/test_signing_fast.py)."""
    registry.check_header(header)
    model = registry.get_alg(header["alg"])
    model.check_key(key)
    header_segment = json_b64encode(header)
    signature = model.sign(header_segment + b"." + urlsafe_b64encode(payload), key)
    return (header_segment + b".." + urlsafe_b64encode(signature)).decode("ascii")


def verify_detached(
    header_b64: str,
    header: dict[str, Any],
    payload_b64: bytes,
    signature_b64: str,
    *,
    key: jwk.Key,
    registry: JWSRegistry,
) -> None:
    """What ``jws.deserialize_compact`` checks for the compact JWS ``header_b64.payload_b64.signature_b64`` once
    its protected header has been parsed strictly into `header` (here or in tokens.py) and the payload segment
    is known to be canonical base64url: joserfc's size limits and registry checks and its algorithm object's key
    check (JoseError or ValueError: joserfc refuses the JWS), then the signature's strict base64url and its
    verification (BadSignatureError, as from joserfc). tests/identity/test_signing_fast.py holds it to joserfc."""
    registry.validate_header_size(header_b64.encode("ascii"))
    registry.validate_signature_size(signature_b64.encode("ascii"))
    registry.check_header(header)
    model = registry.get_alg(header["alg"])
    model.check_key(key)
    try:
        signature = urlsafe_b64decode(signature_b64.encode("ascii"))
    except ValueError:
        raise BadSignatureError() from None
    if not model.verify(header_b64.encode("ascii") + b"." + payload_b64, signature, key):
        raise BadSignatureError()


def _invalid(text: str, expression: str = "Bundle.signature.data") -> HandoverError:
    return HandoverError(Code.SIGNATURE_INVALID, text, expression)


def _decode_data(data: object) -> str:
    """Strict standard base64 of an ASCII compact JWS."""
    if not isinstance(data, str) or len(data) > _MAX_DATA_CHARS:
        raise _invalid(f"Bundle.signature.data must be base64 of at most {_MAX_DATA_CHARS} characters")
    try:
        return base64.b64decode(data.encode("ascii"), validate=True).decode("ascii")
    except (UnicodeError, binascii.Error) as err:
        raise _invalid("Bundle.signature.data is not base64 of a compact JWS") from err


def _split_detached(compact: str) -> tuple[str, str]:
    """The header and signature segments of ``header..signature``; anything else is refused."""
    if compact.lstrip().startswith("{"):
        raise _invalid("JWS JSON serialisation is not accepted; use the compact detached form header..signature")
    parts = compact.split(".")
    if len(parts) != 3:
        raise _invalid("not a compact JWS with exactly one signature (expected header..signature)")
    header_b64, payload_b64, signature_b64 = parts
    if payload_b64:
        raise _invalid("the JWS payload must be detached (header..signature)")
    if not _B64URL.fullmatch(header_b64) or not _B64URL.fullmatch(signature_b64):
        raise _invalid("the JWS header and signature must be non-empty base64url")
    return header_b64, signature_b64


def _b64url(segment: str, what: str) -> bytes:
    try:
        return urlsafe_b64decode(segment.encode("ascii"))
    except (ValueError, binascii.Error) as err:
        raise _invalid(f"{what} is not canonical base64url") from err


def _decode_header(header_b64: str) -> dict[str, Any]:
    """The protected header as a strict JSON object: UTF-8, no duplicate keys, no NaN/Infinity."""
    if len(header_b64) > _MAX_HEADER_CHARS:
        raise _invalid("the JWS protected header is too long")
    raw = _b64url(header_b64, "the JWS protected header")
    try:
        header = _HEADER_DECODER.decode(raw.decode("utf-8"))
    except ValueError as err:  # includes UnicodeDecodeError and json.JSONDecodeError
        raise _invalid("the JWS protected header is not strict JSON") from err
    if not isinstance(header, dict):
        raise _invalid("the JWS protected header must be a JSON object")
    return header


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# What json.loads(text, object_pairs_hook=..., parse_constant=...) builds on every call, built once. (json.loads
# also refuses a leading U+FEFF with its own message; decode refuses it as not JSON: the same ValueError here.)
_HEADER_DECODER = json.JSONDecoder(object_pairs_hook=unique_members, parse_constant=_no_constant)


def _check_header(header: Mapping[str, Any]) -> tuple[str, datetime | None]:
    """Everything about the header that needs no key: parameters, alg family, typ, iat. Returns alg, iat."""
    for name in _KEY_SOURCE_HEADER:
        if name in header:
            raise _invalid(f"the JWS header parameter {name} is not accepted; keys come only from the registry")
    for name in _PAYLOAD_HEADER:
        if name in header:
            raise _invalid(f"the JWS header parameter {name} is not accepted; the payload is always base64url (b64)")
    if set(header) - _ALLOWED_HEADER:
        raise _invalid("the JWS protected header may carry only alg, kid, typ and iat")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in SUPPORTED_ALGS:
        raise _invalid("alg must be ES256 or Ed25519 (none, HS*, RS*, EdDSA and others are refused)")
    if header.get("typ") != JWS_TYP:
        raise _invalid(f"typ must be {JWS_TYP}")
    iat = header.get("iat")
    if iat is None:
        return alg, None
    if isinstance(iat, bool) or not isinstance(iat, int) or not 0 <= iat <= _MAX_IAT:
        raise _invalid("iat must be an integer number of seconds since 1970")
    return alg, datetime.fromtimestamp(iat, UTC)


def _who_ods(signature: Mapping[str, Any]) -> str | None:
    who = signature.get("who")
    identifier = who.get("identifier") if isinstance(who, Mapping) else None
    if isinstance(identifier, Mapping) and identifier.get("system") == ODS_SYSTEM:
        value = identifier.get("value")
        return value if isinstance(value, str) else None
    return None


def public_key(entry: PublicKeyEntry) -> jwk.Key:
    """The joserfc key of a registered entry, imported once per key (cached)."""
    members = entry.public_jwk
    try:
        return _import_public(
            str(members.get("kty")), str(members.get("crv")), str(members.get("x")), members.get("y"), entry.alg
        )
    except (JoseError, ValueError, TypeError) as err:
        # The registry validates keys when it loads, so this is a misconfigured lookup, not bad input.
        raise HandoverError(Code.INTERNAL, "the registered key for this kid cannot be used") from err


@lru_cache(maxsize=512)
def _import_public(kty: str, crv: str, x: str, y: object, alg: str) -> jwk.Key:
    members: dict[str, Any] = {"kty": kty, "crv": crv, "x": x, "alg": alg, "use": "sig"}
    if kty == "EC":
        members["y"] = y
    return jwk.import_key(members)


def _private_key(private_jwk: Mapping[str, Any]) -> tuple[jwk.Key, str, str]:
    """The joserfc key, its algorithm and its kid (= thumbprint) for a private JWK we can sign with."""
    kty, crv = private_jwk.get("kty"), private_jwk.get("crv")
    names: tuple[str, ...]
    if kty == "EC" and crv == "P-256":
        alg, names = "ES256", ("kty", "crv", "x", "y", "d")
    elif kty == "OKP" and crv == "Ed25519":
        alg, names = "Ed25519", ("kty", "crv", "x", "d")
    else:
        raise ValueError("signing keys must be EC P-256 (ES256) or OKP Ed25519 (Ed25519)")
    if private_jwk.get("alg", alg) != alg:
        raise ValueError(f"the key's alg does not match its type (expected {alg})")
    if not isinstance(private_jwk.get("d"), str):
        raise ValueError("a private JWK with d is required to sign")
    key, kid = _import_private(tuple((name, private_jwk[name]) for name in names))
    if private_jwk.get("kid", kid) != kid:
        raise ValueError("the key's kid is not its RFC 7638 thumbprint")
    return key, alg, kid


@lru_cache(maxsize=64)
def _import_private(members: tuple[tuple[str, Any], ...]) -> tuple[jwk.Key, str]:
    """The key and its thumbprint: importing costs more than signing, so once per key (the hub signs every
    receipt)."""
    as_dict = dict(members)
    return jwk.import_key(as_dict), thumbprint(as_dict)


def _utc_seconds(when: datetime | None) -> datetime:
    moment = datetime.now(UTC) if when is None else when
    if moment.tzinfo is None:
        raise ValueError("when must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0)
