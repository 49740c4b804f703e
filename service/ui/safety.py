"""The clinical safety page (`GET /ui/safety`, governance staff): the hazard log with each control's tests and
their results in the last `make safety` run (var/safety/junit.xml), rendered by service/safety/report.py."""

from __future__ import annotations

from aiohttp import web

from service.http.context import SERVICES
from service.identity.roles import GOVERNANCE
from service.safety.report import current_safety_case, template_context
from service.ui.access import current_session, require_role
from service.ui.rendering import render


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/ui/safety", show_safety_case)


async def show_safety_case(request: web.Request) -> web.Response:
    session = await current_session(request)
    require_role(session, GOVERNANCE)
    evidence = request.app[SERVICES].settings.var_dir / "safety" / "junit.xml"
    case = current_safety_case(evidence)
    return render(request, "safety/safety.html", {"page_title": "Clinical safety", **template_context(case)})
