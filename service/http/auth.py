"""Who is calling: the one place that turns a request's credentials into an organisation's ODS code.

Walking-skeleton rule (issue 3): the caller is the `sub` of the bearer JWT, NOT yet verified. The
signatures issue replaces `authenticate_trust` with full verification (signature by the trust's registered
key, iss = sub, aud, exp, single-use jti, mTLS binding); nothing else in the service reads credentials.
"""

from __future__ import annotations

import base64
import binascii
import json

from aiohttp import web

from service.errors import Code, HandoverError
from service.registry import Registry
from service.terminology import is_ods_code

_MAX_TOKEN_LENGTH = 4096


async def authenticate_trust(request: web.Request, registry: Registry) -> str:
    """The ODS code of the calling trust, or 401 `unauthenticated`."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token or len(token) > _MAX_TOKEN_LENGTH:
        raise _unauthenticated("An Authorization: Bearer <JWT> header is required")
    parts = token.split(".")
    if len(parts) != 3:
        raise _unauthenticated("The bearer token is not a compact JWT")
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        raise _unauthenticated("The bearer token's claims are not base64url JSON") from None
    subject = claims.get("sub") if isinstance(claims, dict) else None
    if not is_ods_code(subject) or not registry.is_participant(str(subject)):
        raise _unauthenticated("The bearer token's subject is not a participant of this network")
    return str(subject)


def _unauthenticated(text: str) -> HandoverError:
    return HandoverError(Code.UNAUTHENTICATED, text)
