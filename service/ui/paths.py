"""Ids in the staff pages' paths: a malformed one is simply a page that does not exist (404), never a 500."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from service.errors import Code, HandoverError


def uuid_in_path(request: web.Request, name: str, refusal: str) -> UUID:
    """The UUID in path segment `name`; HandoverError NOT_FOUND with `refusal` if it is not one."""
    try:
        return UUID(request.match_info[name])
    except ValueError:
        raise HandoverError(Code.NOT_FOUND, refusal) from None
