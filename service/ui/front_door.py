"""`GET /`: a browser (it asks for HTML) is sent on to the staff pages at /ui/; any other client gets the 404
OperationOutcome it always had, since the API has no resource at `/`."""

from __future__ import annotations

from aiohttp import web

from service.errors import Code, HandoverError
from service.ui.access import is_browser


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/", front_door)


async def front_door(request: web.Request) -> web.Response:
    if is_browser(request):
        raise web.HTTPFound("/ui/")
    raise HandoverError(Code.NOT_FOUND, "No such resource")
