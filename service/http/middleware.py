"""The only place that builds an error response: every refusal becomes an OperationOutcome.

Also: one JSON log line per request (ids and status, never a body) and request counts for /metrics.
An unexpected exception is answered with a bare 500 `internal` OperationOutcome (no trace, no values) and
logged as its type and location only.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from service.errors import Code, HandoverError, operation_outcome
from service.http.context import SERVICES

log = logging.getLogger("handover.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FHIR_JSON = "application/fhir+json"

_HTTP_STATUS_CODES = {
    400: Code.BAD_HEADER,
    401: Code.UNAUTHENTICATED,
    403: Code.FORBIDDEN,
    404: Code.NOT_FOUND,
    405: Code.METHOD_NOT_ALLOWED,
    413: Code.PAYLOAD_TOO_LARGE,
    415: Code.UNSUPPORTED_MEDIA_TYPE,
}


def error_response(error: HandoverError) -> web.Response:
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    return web.Response(
        status=error.status,
        body=json.dumps(operation_outcome(error.issues)).encode("utf-8"),
        content_type=FHIR_JSON,
        headers=headers,
    )


@web.middleware
async def outcome_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    request_id = request.headers.get("X-Request-ID", "")
    try:
        uuid.UUID(request_id)
    except ValueError:
        request_id = ""
    try:
        response = await handler(request)
    except HandoverError as error:
        response = error_response(error)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_STATUS_CODES.get(exc.status, Code.BAD_HEADER if exc.status < 500 else Code.INTERNAL)
        response = error_response(HandoverError(code, _http_exception_text(exc, code)))
    except Exception:  # the one place that turns a fault into a safe 500
        log.exception("unhandled fault", extra={"path": request.path, "request_id": request_id or None})
        response = error_response(HandoverError(Code.INTERNAL, "An unexpected fault on the hub; nothing was accepted"))
    request.app[SERVICES].metrics.requests.labels(str(response.status)).inc()
    log.info(
        "request",
        extra={
            "method": request.method,
            "path": request.rel_url.path if response.status != 404 else "(not found)",
            "status": response.status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            "request_id": request_id or None,
        },
    )
    return response


def _http_exception_text(exc: web.HTTPException, code: Code) -> str:
    if code is Code.NOT_FOUND:
        return "No such resource"
    if code is Code.METHOD_NOT_ALLOWED:
        allowed = sorted(getattr(exc, "allowed_methods", ()) or ())
        return "This path does not accept that method" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
    return exc.reason
