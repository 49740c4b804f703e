"""The profile pages inside the staff pages: `GET /ui/profiles` and `/ui/profiles/{name}` show what
service/profilepages.py generates from the conformance resources (descriptions' markdown rendered) in the staff
layout, with its header, navigation and sign-out, behind a session like every page under /ui/ (CONTRACT.md
section 8: 303 to sign-in for a browser, 401 for other clients). The public copies are service/http/profiles_ui.py.

`{name}` may end in `.html`, as the pages `make profiles` writes link to each other.
"""

from __future__ import annotations

from functools import cache

from aiohttp import web
from markupsafe import Markup

from service.errors import Code, HandoverError
from service.profilepages import render_page_bodies
from service.ui.access import current_session
from service.ui.rendering import render
from service.validation import load_validator

STAFF_PATH = "/ui/profiles"


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get(STAFF_PATH, show_index)
    router.add_get(STAFF_PATH + "/{name}", show_page)


@cache
def _bodies() -> dict[str, tuple[str, str]]:
    return render_page_bodies(load_validator().conformance, lambda name: f"{STAFF_PATH}/{name}")


async def show_index(request: web.Request) -> web.Response:
    await current_session(request)
    return _render(request, "index")


async def show_page(request: web.Request) -> web.Response:
    await current_session(request)
    return _render(request, request.match_info["name"].removesuffix(".html"))


def _render(request: web.Request, name: str) -> web.Response:
    found = _bodies().get(name)
    if found is None:
        raise HandoverError(Code.NOT_FOUND, "No such profile page")
    title, body = found
    # The body is built by profilepages, which escapes every value it takes from the resources.
    context = {"page_title": title, "body": Markup(body), "is_index": name == "index"}  # noqa: S704
    return render(request, "profiles/page.html", context)
