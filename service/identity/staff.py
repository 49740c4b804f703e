"""Staff identity: governance and operations staff sign in through an identity provider's bearer tokens.

A staff token is a JWT signed by the staff identity provider (ES256): ``iss`` = its issuer, ``sub`` = the
user, ``aud`` = ``handover``, ``role`` = ``governance`` | ``ops``, ``iat``/``exp`` (at most 12 hours), ``jti``.
In production the provider is the organisation's (CIS2 or the trust's OIDC) and HANDOVER_STAFF_JWKS names a
file with its public keys. For development, ``handover keys init`` makes ``keys/private/staff-idp.jwk`` and
``handover staff token --user NAME --role governance|ops`` mints tokens with it; without
HANDOVER_STAFF_JWKS the service trusts that dev key's public part.

Roles (CONTRACT.md section 6; the one vocabulary is service/identity/roles.py, of which a token carries these
two): ``governance`` reads metadata, the audit log and episodes, and a payload only with a stated reason (itself
audited); ``ops`` reads health and queues, never payloads.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import import_key
from joserfc.jws import JWSRegistry

from service.errors import Code, HandoverError
from service.identity.keystore import generate_private_jwk
from service.identity.roles import BEARER_ROLES, StaffRole
from service.identity.signing import sign_compact_jwt, thumbprint

DEV_ISSUER = "urn:handover:dev-staff-idp"
STAFF_KEY_FILE = "staff-idp.jwk"
MAX_STAFF_TOKEN_LIFETIME = timedelta(hours=12)
_REGISTRY = JWSRegistry(algorithms=["ES256"])


@dataclass(frozen=True)
class StaffIdentity:
    user: str
    role: StaffRole
    token_id: str
    expires_at: datetime


@dataclass(frozen=True)
class StaffIdentityProvider:
    """The issuer whose tokens we accept and its public keys, by kid."""

    issuer: str
    keys: Mapping[str, Mapping[str, Any]]

    @classmethod
    def load(cls, jwks_path: Path | None, keys_dir: Path, issuer: str = DEV_ISSUER) -> StaffIdentityProvider:
        """From a JWKS file, else from the development key in `keys_dir` (none: no staff can sign in)."""
        members = ("kty", "crv", "x", "y")
        if jwks_path is not None:
            doc = json.loads(jwks_path.read_text(encoding="utf-8"))
            keys = {k["kid"]: {m: k[m] for m in members} for k in doc["keys"] if k.get("kty") == "EC"}
            return cls(issuer, keys)
        dev = keys_dir / STAFF_KEY_FILE
        if not dev.exists():
            return cls(issuer, {})
        private = json.loads(dev.read_text(encoding="utf-8"))
        return cls(issuer, {thumbprint(private): {m: private[m] for m in members}})

    def issued(self, token: str) -> bool:
        """Whether the token names one of this provider's keys (a cheap routing hint; `verify` still decides)."""
        try:
            header = json.loads(_b64(token.split(".", 1)[0]))
        except ValueError:
            return False
        return isinstance(header, dict) and header.get("kid") in self.keys

    def verify(self, token: str, *, now: datetime) -> StaffIdentity:
        """The staff identity a token proves, or 401 `unauthenticated`."""
        parts = token.split(".")
        if len(token) > 4096 or len(parts) != 3:
            raise _refused("the staff token is not a compact JWT")
        try:
            header = json.loads(_b64(parts[0]))
            key = self.keys.get(header.get("kid", "")) if isinstance(header, dict) else None
            if key is None or header.get("alg") != "ES256" or set(header) - {"alg", "kid", "typ"}:
                raise _refused("the staff token is not signed by a key of the staff identity provider")
            claims = json.loads(jws.deserialize_compact(token, import_key(dict(key)), registry=_REGISTRY).payload)
        except (JoseError, ValueError, TypeError):
            raise _refused("the staff token could not be verified") from None
        return _identity(claims, self.issuer, now)


def _identity(claims: Any, issuer: str, now: datetime) -> StaffIdentity:
    if not isinstance(claims, dict) or claims.get("iss") != issuer or claims.get("aud") != "handover":
        raise _refused("the staff token's issuer or audience is not accepted")
    iat, exp, sub, jti = claims.get("iat"), claims.get("exp"), claims.get("sub"), claims.get("jti")
    if not isinstance(iat, int) or not isinstance(exp, int) or isinstance(iat, bool) or isinstance(exp, bool):
        raise _refused("the staff token needs integer iat and exp")
    issued, expires = datetime.fromtimestamp(iat, UTC), datetime.fromtimestamp(exp, UTC)
    if expires <= now or issued > now + timedelta(minutes=5) or expires - issued > MAX_STAFF_TOKEN_LIFETIME:
        raise _refused("the staff token has expired or is not yet valid")
    if not isinstance(sub, str) or not 0 < len(sub) <= 128 or not isinstance(jti, str):
        raise _refused("the staff token needs sub and jti")
    try:
        role = StaffRole(str(claims.get("role")))
        if role not in BEARER_ROLES:
            raise ValueError(role)
    except ValueError:
        raise _refused("the staff token's role must be governance or ops") from None
    return StaffIdentity(sub, role, jti, expires)


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _refused(text: str) -> HandoverError:
    return HandoverError(Code.UNAUTHENTICATED, text)


def ensure_dev_staff_key(keys_dir: Path) -> bool:
    """Create the development staff identity provider key if missing; True if it was created."""
    path = keys_dir / STAFF_KEY_FILE
    if path.exists():
        return False
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text(json.dumps(generate_private_jwk()), encoding="utf-8")
    path.chmod(0o600)
    return True


def mint_dev_staff_token(keys_dir: Path, user: str, role: StaffRole, *, minutes: int = 60) -> str:
    """A development staff token signed with keys/private/staff-idp.jwk."""
    private = json.loads((keys_dir / STAFF_KEY_FILE).read_text(encoding="utf-8"))
    now = int(time.time())
    lifetime = min(minutes * 60, int(MAX_STAFF_TOKEN_LIFETIME.total_seconds()))
    claims = {
        "iss": DEV_ISSUER,
        "sub": user,
        "aud": "handover",
        "role": role.value,
        "iat": now,
        "exp": now + lifetime,
        "jti": str(uuid.uuid4()),
    }
    return sign_compact_jwt(claims, private)
