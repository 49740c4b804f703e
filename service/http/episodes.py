"""Episodes and governance over HTTP: GET /episodes, GET /episodes/{id}, GET /governance/summary.

Governance staff see every episode; a trust sees the episodes it refers or treats; ops staff see none.
The NHS number is a filter only: it is never stored or returned in clear.
"""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from service.episodes.governance import governance_summary as compute_summary
from service.episodes.governance import summary_json
from service.episodes.views import episode_detail, episode_summary
from service.errors import Code, HandoverError
from service.governance import read_payload
from service.http.auth import authenticate_staff, authenticate_trust
from service.http.context import services
from service.identity.roles import StaffRole
from service.store import cwt as cwt_store
from service.store import db, episode_reads
from service.terminology import is_nhs_number

PAGE = 200


async def _viewer(request: web.Request) -> str | None:
    """None for governance staff (sees all), else the calling trust's ODS code."""
    token = request.headers.get("Authorization", "").partition(" ")[2].strip()
    hub = services(request)
    if token and hub.staff.recognises(token):
        await authenticate_staff(request, StaffRole.GOVERNANCE)
        return None
    return await authenticate_trust(request)


async def list_episodes(request: web.Request) -> web.Response:
    viewer = await _viewer(request)
    hub = services(request)
    query = request.rel_url.query
    nhs_number = query.get("nhs-number")
    if nhs_number is not None and not is_nhs_number(nhs_number):
        raise HandoverError(Code.BAD_HEADER, "nhs-number must be 10 digits with a valid Modulus 11 check digit")
    trust = query.get("trust")
    if viewer is not None and trust not in (None, viewer):
        raise HandoverError(Code.FORBIDDEN, "a trust may list only its own episodes")
    now = hub.clock()
    async with db.connection(hub.pool) as conn:
        rows = await episode_reads.list_episodes(
            conn,
            nhs_number_hmac=hub.pseudonyms.nhs_number(nhs_number) if nhs_number else None,
            trust=trust or viewer,
            state=query.get("state"),
            overdue_at=now if query.get("overdue") == "true" else None,
            limit=PAGE,
        )
        deadlines = await episode_reads.deadlines(conn, [row.id for row in rows])
        cwt = await cwt_store.cwt_dates_of(conn, [row.id for row in rows if row.pathway_start is not None])
    return web.json_response(
        {"episodes": [episode_summary(r, deadlines.get(r.id, []), now, cwt.get(r.id)) for r in rows]}
    )


async def get_episode(request: web.Request) -> web.Response:
    viewer = await _viewer(request)
    hub = services(request)
    try:
        episode_id = UUID(request.match_info["episode_id"])
    except ValueError:
        raise HandoverError(Code.NOT_FOUND, "No such episode") from None
    async with db.connection(hub.pool) as conn:
        row = await episode_reads.get_episode(conn, episode_id)
        if row is None or (viewer is not None and viewer not in (row.referrer_ods, row.centre_ods)):
            raise HandoverError(Code.NOT_FOUND, "No such episode")
        deadlines = (await episode_reads.deadlines(conn, [row.id])).get(row.id, [])
        timeline = await episode_reads.timeline(conn, row.id)
        ledger = await episode_reads.ledger(conn, row.id)
        cwt = await cwt_store.read_cwt_dates(conn, row.id)
    return web.json_response(episode_detail(row, deadlines, timeline, ledger, hub.clock(), cwt=cwt))


async def governance_read_payload(request: web.Request) -> web.Response:
    """GET /governance/messages/{message_id}?reason=…: the original bytes, for governance staff, audited."""
    reader = await authenticate_staff(request, StaffRole.GOVERNANCE)
    try:
        message_id = UUID(request.match_info["message_id"])
    except ValueError:
        raise HandoverError(Code.NOT_FOUND, "No such message") from None
    hub = services(request)
    reason = request.rel_url.query.get("reason", "")
    payload = await read_payload(hub.pool, message_id, reader, reason, hub.clock, vault=hub.mailboxes.vault)
    return web.Response(body=payload, content_type="application/fhir+json")


async def governance_summary(request: web.Request) -> web.Response:
    await authenticate_staff(request, StaffRole.GOVERNANCE)
    hub = services(request)
    return web.json_response(summary_json(await compute_summary(hub.pool, hub.clock())))
