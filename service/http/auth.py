"""Who is calling: the one place that turns a request's credentials into an organisation's ODS code.

A trust proves itself with `Authorization: Bearer <JWT>` signed by its registered key (service/identity/tokens.py),
each token usable once; where mutual TLS is on, the client certificate must belong to the same trust.
"""

from __future__ import annotations

from aiohttp import web

from service.errors import Code, HandoverError
from service.http.context import services
from service.identity.roles import StaffRole
from service.identity.staff import StaffIdentity
from service.identity.tls import require_certificate_matches
from service.identity.tokens import TokenClaims


async def authenticate_staff(request: web.Request, *allowed: StaffRole) -> StaffIdentity:
    """The signed-in staff member, if their role is one of `allowed`; else 401 or 403 `forbidden`."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HandoverError(Code.UNAUTHENTICATED, "A staff bearer token is required (Authorization: Bearer <JWT>)")
    return await services(request).staff.authenticate(token.strip(), frozenset(allowed))


async def authenticate_trust(request: web.Request) -> str:
    """The ODS code of the calling trust, or 401 `unauthenticated` (403 for a revoked key); the token is used up."""
    token = _bearer(request)
    found = services(request)
    caller = await found.authenticator.authenticate(token)
    require_certificate_matches(request, caller, found.registry.current)  # 403 forbidden / sender-mismatch under mTLS
    return caller


def verify_trust_token(request: web.Request) -> TokenClaims:
    """As `authenticate_trust`, but the token's jti is left for the caller to consume in its own transaction
    (service/identity/authentication.py `consume_token`): $process-message records it with the acceptance or refusal."""
    found = services(request)
    claims = found.authenticator.verify(_bearer(request))
    require_certificate_matches(request, claims.issuer, found.registry.current)
    return claims


def _bearer(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HandoverError(Code.UNAUTHENTICATED, "An Authorization: Bearer <JWT> header is required")
    return token.strip()
