"""Who is calling: the one place that turns a request's credentials into an organisation's ODS code.

A trust proves itself with `Authorization: Bearer <JWT>` signed by its registered key (service/tokens.py),
each token usable once; where mutual TLS is on, the client certificate must belong to the same trust.
"""

from __future__ import annotations

from aiohttp import web

from service.errors import Code, HandoverError
from service.http.context import services
from service.staff import StaffIdentity, StaffRole
from service.tls import require_certificate_matches


async def authenticate_staff(request: web.Request, *allowed: StaffRole) -> StaffIdentity:
    """The signed-in staff member, if their role is one of `allowed`; else 401 or 403 `forbidden`."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HandoverError(Code.UNAUTHENTICATED, "A staff bearer token is required (Authorization: Bearer <JWT>)")
    return await services(request).staff.authenticate(token.strip(), frozenset(allowed))


async def authenticate_trust(request: web.Request) -> str:
    """The ODS code of the calling trust, or 401 `unauthenticated` (403 for a revoked key)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HandoverError(Code.UNAUTHENTICATED, "An Authorization: Bearer <JWT> header is required")
    found = services(request)
    caller = await found.authenticator.authenticate(token.strip())
    require_certificate_matches(request, caller, found.registry.current)  # 403 forbidden / sender-mismatch under mTLS
    return caller
