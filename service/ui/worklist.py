"""The worklist (home page, `GET /ui/`) and NHS-number search (`POST /ui/search`)."""

from __future__ import annotations

from aiohttp import web

from service.ui.access import current_session, require_role
from service.ui.rendering import render


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/ui/", show_worklist)


async def show_worklist(request: web.Request) -> web.Response:
    session = await current_session(request)
    require_role(session, "governance", "smdt-coordinator", "trust", "ops")
    return render(request, "worklist/worklist.html", {"page_title": "Worklist", "items": []})
