"""The public profile pages (service/profilepages.py), generated once.

`GET /profiles` and `/profiles/{name}`: public documentation for trusts' integration engineers, generated from
the published conformance resources and synthetic examples only, so no authentication is asked for. The same
pages inside the staff pages' layout, behind a session, are service/ui/profiles.py.

`{name}` may end in `.html`, so the pages written by `make profiles` link to each other the same way whether
read from disk or from the hub.
"""

from __future__ import annotations

from functools import cache

from aiohttp import web

from service.errors import Code, HandoverError
from service.profilepages import render_pages
from service.validation import load_validator

PUBLIC_PATH = "/profiles"
CSP = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"}  # no script at all


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get(PUBLIC_PATH, profiles_index)
    router.add_get(PUBLIC_PATH + "/{name}", profile_page)


@cache
def _pages(base: str) -> dict[str, str]:
    return render_pages(load_validator().conformance, lambda name: f"{base}/{name}")


async def profiles_index(request: web.Request) -> web.Response:
    return _html(_pages(PUBLIC_PATH)["index"])


async def profile_page(request: web.Request) -> web.Response:
    return _html(_page(PUBLIC_PATH, request))


def _page(base: str, request: web.Request) -> str:
    page = _pages(base).get(request.match_info["name"].removesuffix(".html"))
    if page is None:
        raise HandoverError(Code.NOT_FOUND, "No such profile page")
    return page


def _html(text: str) -> web.Response:
    return web.Response(text=text, content_type="text/html", charset="utf-8", headers=CSP)
