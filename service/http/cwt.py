"""`GET /governance/cwt?from=&to=`: the 62-day cancer waiting times per provider with breach allocation, and the
breaches each linked to its episode (CONTRACT section 9). Governance staff only."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from aiohttp import web

from service.episodes.cwt_report import cwt_report, names_from, period_from_query, report_json
from service.http.auth import authenticate_staff
from service.http.context import services
from service.staff import StaffRole

UK = ZoneInfo("Europe/London")


async def governance_cwt(request: web.Request) -> web.Response:
    await authenticate_staff(request, StaffRole.GOVERNANCE)
    hub = services(request)
    now = hub.clock()
    query = request.rel_url.query
    start, end = period_from_query(query.get("from"), query.get("to"), now.astimezone(UK).date())
    report = await cwt_report(hub.pool, start, end, now)
    return web.json_response(report_json(report, names_from(hub.registry)))
