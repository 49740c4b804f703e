"""Reading the hub's request headers strictly: request and correlation ids, content types."""

from __future__ import annotations

import re
from uuid import UUID

from aiohttp import web

from service.errors import Code, HandoverError

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", re.ASCII)
FHIR_JSON_TYPES = frozenset({"application/fhir+json", "application/json"})


def uuid_header(request: web.Request, name: str, *, required: bool) -> UUID | None:
    """The header's value as a UUID; 400 `bad-header` if it is malformed, or missing when required."""
    values = request.headers.getall(name, [])
    if not values:
        if required:
            raise HandoverError(Code.BAD_HEADER, f"{name} is required: a UUID that makes a retry safe to send")
        return None
    if len(values) > 1 or not _UUID.fullmatch(values[0]):
        raise HandoverError(Code.BAD_HEADER, f"{name} must be one UUID (8-4-4-4-12 hexadecimal digits)")
    return UUID(values[0])


def require_fhir_json(request: web.Request) -> None:
    """415 unless Content-Type is application/fhir+json or application/json (charset, if given, UTF-8)."""
    raw = request.headers.get("Content-Type", "")
    media_type, _, params = raw.partition(";")
    charset = ""
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "charset":
            charset = value.strip().strip('"').lower()
    if media_type.strip().lower() not in FHIR_JSON_TYPES or charset not in ("", "utf-8"):
        raise HandoverError(
            Code.UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/fhir+json (or application/json), UTF-8",
        )
