"""Refusals on the staff pages as pages: a browser under /ui/ gets the 403, 404 or a general error page,
never the refusal's own text (which may name what it protects). Other clients keep the OperationOutcome
that `service.http.middleware` makes. A missing static file is a 404 with a body (a page for a browser, a line of
text for anything else). `refusal_page` is the page for requests the HTTP parser refuses (too long, not HTTP).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2
from aiohttp import web

from service.errors import Code, HandoverError
from service.http.middleware import Handler
from service.http.security_headers import STATIC_PREFIX
from service.ui.access import SIGN_IN_PATH, is_browser
from service.ui.rendering import render

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC_ROOT = Path(__file__).resolve().parent / "static"
_PAGES = {
    403: ("errors/403.html", "You cannot see this page"),
    404: ("errors/404.html", "Page not found"),
}


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(STATIC_PREFIX):
        return await _static_file(request, handler)
    if not request.path.startswith("/ui/") or not is_browser(request):
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


async def _static_file(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A static file, or its refusal with a body (aiohttp answers a missing file with an empty 404)."""
    wanted = (STATIC_ROOT / request.match_info.get("filename", "")).resolve()
    try:
        if not wanted.is_relative_to(STATIC_ROOT) or not wanted.is_file():
            raise web.HTTPNotFound
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if is_browser(request):
            return _page(request, exc.status)
        return web.Response(status=exc.status, text=f"{exc.reason}\n", content_type="text/plain")


def _page(request: web.Request, status: int) -> web.Response:
    template, title = _PAGES.get(status, ("errors/problem.html", "Sorry, there is a problem"))
    return render(request, template, {"page_title": title, "status": status}, status=status)


@cache
def refusal_page(status: int) -> str:
    """The page for a request refused before it reached the hub's handlers (service/http/protocol_errors.py):
    the staff pages' look, no session, nothing of the request echoed."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )
    template, title = (
        ("errors/problem.html", "Sorry, there is a problem")
        if status >= 500
        else (
            "errors/refused.html",
            "Sorry, the hub could not read that request",
        )
    )
    return env.get_template(template).render(page_title=title, status=status, session=None, navigation=[])
