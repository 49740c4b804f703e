"""The episode page, `GET /ui/episodes/{episode_id}`."""

from __future__ import annotations

from aiohttp import web

from service.errors import Code, HandoverError
from service.ui.access import current_session


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/ui/episodes/{episode_id}", show_episode)


async def show_episode(request: web.Request) -> web.Response:
    await current_session(request)
    raise HandoverError(Code.NOT_FOUND, "No such episode")
