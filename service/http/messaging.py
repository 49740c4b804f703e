"""POST /fhir/$process-message: authenticate, read the body under its limit, hand it to intake."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from service.errors import Code, HandoverError
from service.http.auth import verify_trust_token
from service.http.body import read_body
from service.http.context import services
from service.http.headers import require_fhir_json, uuid_header
from service.identity.tokens import TokenClaims
from service.intake import Submission

FHIR_JSON = "application/fhir+json"


async def process_message(request: web.Request) -> web.Response:
    hub = services(request)
    token: TokenClaims | None = None
    request_id: UUID | None = None
    body = b""
    try:
        token = verify_trust_token(request)  # its jti is used up in the one transaction that records the outcome
        request_id = uuid_header(request, "X-Request-ID", required=True)
        correlation_id = uuid_header(request, "X-Correlation-ID", required=False)
        require_fhir_json(request)
        body = await read_body(request, hub.settings.max_body_bytes)
        assert request_id is not None
        accepted = await hub.intake.accept(Submission(body, token.issuer, request_id, correlation_id, token=token))
    except HandoverError as error:
        code = error.code
        if code is not Code.UNAVAILABLE:
            caller = token.issuer if token is not None else None
            code = await hub.intake.record_refusal(caller, request_id, body, code, token=token)
        hub.metrics.refused.labels(code.value).inc()
        if code is not error.code:
            raise HandoverError(code, "this bearer token was already used: mint a new one (new jti)") from None
        raise
    if not accepted.replayed:
        hub.metrics.accepted.labels(accepted.event).inc()
    headers = {"X-Handover-Message-ID": str(accepted.message_id)}
    if accepted.replayed:
        headers["X-Handover-Replayed"] = "true"
    return web.Response(status=202, body=accepted.receipt, content_type=FHIR_JSON, headers=headers)
