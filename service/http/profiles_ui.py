"""GET /ui/profiles and /ui/profiles/{name}: the profile pages (service/profilepages.py), generated once.

They are public documentation for integrators: generated from the published conformance resources and
synthetic examples only, so no authentication is asked for. `{name}` may end in `.html`, so the pages written
by `make profiles` link to each other the same way whether read from disk or from the hub.
"""

from __future__ import annotations

from functools import cache

from aiohttp import web

from service.errors import Code, HandoverError
from service.profilepages import render_pages
from service.validation import load_validator

BASE_PATH = "/ui/profiles"
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "public, max-age=300",
}


@cache
def _pages() -> dict[str, str]:
    return render_pages(load_validator().conformance, lambda name: f"{BASE_PATH}/{name}")


async def profiles_index(request: web.Request) -> web.Response:
    return _html(_pages()["index"])


async def profile_page(request: web.Request) -> web.Response:
    name = request.match_info["name"].removesuffix(".html")
    page = _pages().get(name)
    if page is None:
        raise HandoverError(Code.NOT_FOUND, "No such profile page")
    return _html(page)


def _html(text: str) -> web.Response:
    return web.Response(text=text, content_type="text/html", charset="utf-8", headers=HEADERS)
