"""Bearer-token verification for trust callers (CONTRACT.md section 6, "Who is calling"; RFC 7523 style).

A token is a compact JWT signed ES256 or Ed25519 with the trust's registered key: ``iss`` = ``sub`` = the
key owner's ODS code, ``aud`` = ``handover``, integer ``iat`` and ``exp`` with ``exp`` at most five minutes
after ``iat``, and a ``jti``. This module checks everything that needs no database; single use of ``jti``
is enforced by the caller (service/identity/authentication.py) with the returned claims.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeGuard

from joserfc.errors import BadSignatureError, JoseError
from joserfc.jws import JWSRegistry
from joserfc.util import urlsafe_b64decode

from service.errors import Code, HandoverError
from service.identity.signing import SUPPORTED_ALGS, KeyLookup, PublicKeyEntry, public_key, verify_detached
from service.strictjson import unique_members

AUDIENCE = "handover"
MAX_TOKEN_CHARS = 4096
MAX_LIFETIME = timedelta(minutes=5)
CLOCK_SKEW = timedelta(minutes=5)
_B64URL = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)
_KID = re.compile(r"[A-Za-z0-9_-]{43}", re.ASCII)
_JTI = re.compile(r"[\x21-\x7e]{1,128}", re.ASCII)
_HEADER = frozenset({"alg", "kid", "typ"})
_REGISTRIES = {alg: JWSRegistry(algorithms=[alg]) for alg in SUPPORTED_ALGS}
_DECODER = json.JSONDecoder(object_pairs_hook=unique_members)  # json.loads would build this on every call


@dataclass(frozen=True)
class TokenClaims:
    issuer: str
    jti: str
    issued_at: datetime
    expires_at: datetime
    key: PublicKeyEntry


def verify_bearer_token(token: str, keys: KeyLookup, *, now: datetime) -> TokenClaims:
    """The verified claims of `token`, or HandoverError: UNAUTHENTICATED (malformed, bad signature, wrong
    audience or issuer, expired, too long-lived, issued in the future), UNKNOWN_KEY, KEY_REVOKED."""
    if len(token) > MAX_TOKEN_CHARS:
        raise _refused("the bearer token is too long")
    parts = token.split(".")
    if len(parts) != 3 or not all(_B64URL.fullmatch(part) for part in parts):
        raise _refused("the bearer token is not a compact JWT (header.claims.signature)")
    header, claims = _json_segment(parts[0], "header"), _json_segment(parts[1], "claims")
    if set(header) - _HEADER or header.get("typ", "JWT") != "JWT":
        raise _refused("the token header may carry only alg, kid and typ JWT (no jku, x5u, jwk, x5c, crit)")
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or alg not in SUPPORTED_ALGS:
        raise _refused("the token alg must be ES256 or Ed25519")
    if not isinstance(kid, str) or not _KID.fullmatch(kid):
        raise HandoverError(Code.UNKNOWN_KEY, "the token kid must be the thumbprint of a registered key")
    entry = keys(kid)
    if entry is None or entry.kid != kid or entry.owner_ods == "hub":
        raise HandoverError(Code.UNKNOWN_KEY, "the token kid does not name a trust's key in the network registry")
    if alg != entry.alg:
        raise _refused(f"the token alg must be {entry.alg}, the algorithm pinned for this key")
    try:
        _verify_signature(parts, header, public_key(entry), _REGISTRIES[alg])
    except BadSignatureError:
        raise _refused("the bearer token's signature does not verify") from None
    except (JoseError, ValueError):
        raise _refused("the bearer token could not be verified") from None
    return _check_claims(claims, entry, now)


def _verify_signature(parts: list[str], header: dict[str, Any], key: Any, registry: JWSRegistry) -> None:
    """What ``jws.deserialize_compact(token, key, registry=registry)`` checks, the header having been parsed
    strictly above: joserfc's payload size limit and strict base64url of the header and claims (JoseError or
    ValueError, as from joserfc), then `verify_detached`. tests/identity/test_signing_fast.py holds it to
    joserfc's own answer."""
    header_b64, claims_b64, signature_b64 = parts
    registry.validate_payload_size(claims_b64.encode("ascii"))
    urlsafe_b64decode(header_b64.encode("ascii"))  # binascii.Error is a ValueError, as from joserfc
    urlsafe_b64decode(claims_b64.encode("ascii"))
    verify_detached(header_b64, header, claims_b64.encode("ascii"), signature_b64, key=key, registry=registry)


def _check_claims(claims: dict[str, Any], entry: PublicKeyEntry, now: datetime) -> TokenClaims:
    if claims.get("iss") != entry.owner_ods or claims.get("sub") != entry.owner_ods:
        raise _refused("iss and sub must both be the ODS code of the key's owner")
    audience = claims.get("aud")
    if audience != AUDIENCE and not (isinstance(audience, list) and AUDIENCE in audience):
        raise _refused(f"aud must be {AUDIENCE}")
    iat, exp, jti = claims.get("iat"), claims.get("exp"), claims.get("jti")
    if not _is_int(iat) or not _is_int(exp):
        raise _refused("iat and exp must be integer seconds since 1970")
    issued, expires = datetime.fromtimestamp(iat, UTC), datetime.fromtimestamp(exp, UTC)
    if expires <= issued or expires - issued > MAX_LIFETIME:
        raise _refused("exp must be after iat and at most 5 minutes after it")
    if issued > now + CLOCK_SKEW:
        raise HandoverError(Code.STALE_MESSAGE, "the token's iat is in the future: check the sender's clock")
    if expires <= now:
        raise _refused("the bearer token has expired")
    if not isinstance(jti, str) or not _JTI.fullmatch(jti):
        raise _refused("jti must be a printable ASCII string of at most 128 characters")
    if not entry.verifies_at(issued):
        raise HandoverError(Code.KEY_REVOKED, "the token's key was revoked or retired before the token was issued")
    return TokenClaims(entry.owner_ods, jti, issued, expires, entry)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 253402300799


def _json_segment(segment: str, what: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = _DECODER.decode(raw.decode("utf-8"))
    except (binascii.Error, ValueError):
        raise _refused(f"the token {what} is not base64url of a strict JSON object") from None
    if not isinstance(value, dict):
        raise _refused(f"the token {what} is not a JSON object")
    return value


def _refused(text: str) -> HandoverError:
    return HandoverError(Code.UNAUTHENTICATED, text)
