"""The profile pages (service/profilepages.py), generated once per place they are served from.

* `GET /profiles` and `/profiles/{name}`: public documentation for trusts' integration engineers, generated from
  the published conformance resources and synthetic examples only, so no authentication is asked for.
* `GET /ui/profiles` and `/ui/profiles/{name}`: the same pages inside the staff pages, behind a session like
  every page under /ui/ (CONTRACT.md section 8: 303 to sign-in for a browser, 401 for other clients).

`{name}` may end in `.html`, so the pages written by `make profiles` link to each other the same way whether
read from disk or from the hub.
"""

from __future__ import annotations

from functools import cache

from aiohttp import web

from service.errors import Code, HandoverError
from service.profilepages import render_pages
from service.ui.access import current_session
from service.validation import load_validator

PUBLIC_PATH = "/profiles"
STAFF_PATH = "/ui/profiles"
CSP = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"}  # no script at all


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get(PUBLIC_PATH, profiles_index)
    router.add_get(PUBLIC_PATH + "/{name}", profile_page)
    router.add_get(STAFF_PATH, staff_profiles_index)
    router.add_get(STAFF_PATH + "/{name}", staff_profile_page)


@cache
def _pages(base: str) -> dict[str, str]:
    return render_pages(load_validator().conformance, lambda name: f"{base}/{name}")


async def profiles_index(request: web.Request) -> web.Response:
    return _html(_pages(PUBLIC_PATH)["index"])


async def profile_page(request: web.Request) -> web.Response:
    return _html(_page(PUBLIC_PATH, request))


async def staff_profiles_index(request: web.Request) -> web.Response:
    await current_session(request)
    return _html(_pages(STAFF_PATH)["index"])


async def staff_profile_page(request: web.Request) -> web.Response:
    await current_session(request)
    return _html(_page(STAFF_PATH, request))


def _page(base: str, request: web.Request) -> str:
    page = _pages(base).get(request.match_info["name"].removesuffix(".html"))
    if page is None:
        raise HandoverError(Code.NOT_FOUND, "No such profile page")
    return page


def _html(text: str) -> web.Response:
    return web.Response(text=text, content_type="text/html", charset="utf-8", headers=CSP)
