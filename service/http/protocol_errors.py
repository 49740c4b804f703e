"""The answer to a request aiohttp refuses before any middleware or handler sees it: a request line or a header
over aiohttp's limits (`max_line_size`, `max_field_size`: 8190 bytes), bytes that are not HTTP, or a handler that
failed after its response began. aiohttp's own answer is plain text that echoes the first 100 bytes of the
offending line, sent with `Server: Python/3.11 aiohttp/3.x`; ours is a short page (`page(status)`, the staff
pages' look) that echoes nothing, with the headers every other response carries and no versions.

aiohttp offers no public hook for these answers (aio-libs/aiohttp#3287): `HubRunner` builds its low-level server
with connections whose `handle_error` answers instead. tests/http/test_protocol_errors.py holds it to that, so an
aiohttp upgrade that moves the seam fails a test rather than the pages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from service.http.security_headers import CONTENT_SECURITY_POLICY, SERVER_NAME

log = logging.getLogger("handover.http")
RefusalPage = Callable[[int], str]


class RefusingRequestHandler(RequestHandler):
    """One connection of the hub's server: as aiohttp's, but refused requests get `page(status)`."""

    def __init__(self, *args: Any, page: RefusalPage, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._page = page

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp: a response already begun cannot be replaced
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        if status >= 500:
            log.error("request failed before a response", exc_info=exc)
        else:  # the client's fault, and its bytes may be anything: the kind of refusal only
            log.info("request refused by the HTTP parser", extra={"status": status, "error": type(exc).__name__})
        response = web.Response(
            status=status,
            text=self._page(status),
            content_type="text/html",
            headers={
                "Server": SERVER_NAME,
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-store",
                "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                "Referrer-Policy": "same-origin",
                "X-Frame-Options": "DENY",
            },
        )
        response.force_close()
        return response


class RefusingServer(web.Server):
    """aiohttp's low-level server, making `RefusingRequestHandler` connections."""

    def __init__(self, *args: Any, page: RefusalPage, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._page = page

    def __call__(self) -> RequestHandler:
        return RefusingRequestHandler(self, loop=self._loop, page=self._page, **self._kwargs)


class HubRunner(web.AppRunner):
    """`web.AppRunner` whose server answers refused requests with `page(status)`."""

    def __init__(self, app: web.Application, *, page: RefusalPage, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._page = page

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()  # the application started and frozen, as aiohttp does it
        return RefusingServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            page=self._page,
            **server._kwargs,
        )
