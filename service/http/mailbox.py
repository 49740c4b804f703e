"""Pull delivery: GET /mailbox/{ods}/inbox, GET …/inbox/{id}, POST …/inbox/{id}/ack. A trust sees only its own."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from service.errors import Code, HandoverError
from service.http.auth import authenticate_trust
from service.http.context import services

INBOX_PAGE = 100


async def _own_mailbox(request: web.Request) -> str:
    caller = await authenticate_trust(request)
    if request.match_info["ods"] != caller:
        raise HandoverError(Code.FORBIDDEN, "A mailbox can be read only by its own organisation")
    return caller


def _message_id(request: web.Request) -> UUID:
    try:
        return UUID(request.match_info["message_id"])
    except ValueError:
        raise HandoverError(Code.NOT_FOUND, "No such message in this mailbox") from None


async def list_inbox(request: web.Request) -> web.Response:
    ods = await _own_mailbox(request)
    items = await services(request).mailboxes.pending(ods, limit=INBOX_PAGE)
    return web.json_response(
        {
            "messages": [
                {
                    "id": str(item.message_id),
                    "sender": item.sender_ods,
                    "event": item.event,
                    "bundle_identifier": item.bundle_identifier,
                    "sha256": item.payload_sha256,
                    "accepted_at": item.accepted_at.isoformat(),
                    "fetched": item.fetched_at is not None,
                }
                for item in items
            ]
        }
    )


async def fetch_message(request: web.Request) -> web.Response:
    ods = await _own_mailbox(request)
    message_id = _message_id(request)
    payload = await services(request).mailboxes.fetch(ods, message_id)
    if payload is None:
        raise HandoverError(Code.NOT_FOUND, "No such message in this mailbox")
    return web.Response(body=payload, content_type="application/fhir+json")


async def acknowledge(request: web.Request) -> web.Response:
    ods = await _own_mailbox(request)
    message_id = _message_id(request)
    ack = await services(request).mailboxes.acknowledge(ods, message_id)
    if ack is None:
        raise HandoverError(Code.NOT_FOUND, "No such message in this mailbox")
    return web.json_response(
        {"id": str(ack.message_id), "state": "delivered", "delivered_at": ack.delivered_at.isoformat()}
    )
