"""Refusals on the staff pages as pages: a browser under /ui/ gets the 403, 404 or a general error page,
never the refusal's own text (which may name what it protects). Other clients keep the OperationOutcome
that `service.http.middleware` makes.
"""

from __future__ import annotations

from aiohttp import web

from service.errors import Code, HandoverError
from service.http.middleware import Handler
from service.ui.access import SIGN_IN_PATH, is_browser
from service.ui.rendering import render

_PAGES = {
    403: ("errors/403.html", "You cannot see this page"),
    404: ("errors/404.html", "Page not found"),
}


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/ui/") or request.path.startswith("/ui/static/") or not is_browser(request):
        return await handler(request)
    try:
        return await handler(request)
    except HandoverError as error:
        if error.code is Code.UNAUTHENTICATED:
            raise web.HTTPSeeOther(SIGN_IN_PATH) from None
        return _page(request, error.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _page(request, exc.status)


def _page(request: web.Request, status: int) -> web.Response:
    template, title = _PAGES.get(status, ("errors/problem.html", "Sorry, there is a problem"))
    return render(request, template, {"page_title": title, "status": status}, status=status)
