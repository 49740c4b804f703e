"""POST /fhir/Bundle/$validate: the hub's conformance report for a message, with nothing stored.

The body is read exactly as $process-message reads it (media type, size limit before and after decompression,
strict JSON); it may be the message Bundle itself or a FHIR Parameters with the Bundle in `resource`. The answer
is always 200 with an OperationOutcome listing every issue (an information issue when nothing blocks the
message); only unreadable requests get an error status. No signature is needed, since the report is about the
content, but the caller must be an authenticated trust: the operation costs CPU, and bodies may carry patient
data, so it is not open to the internet. Unregistered integrators use `handover validate FILE` offline instead.
"""

from __future__ import annotations

from aiohttp import web

from service.conformance import check_document, unwrap_parameters, validation_outcome
from service.http.auth import authenticate_trust
from service.http.body import read_body
from service.http.context import services
from service.http.headers import require_fhir_json
from service.strictjson import parse_strict_json
from service.validation import load_validator

FHIR_JSON = "application/fhir+json"


async def validate_bundle(request: web.Request) -> web.Response:
    hub = services(request)
    await authenticate_trust(request)
    require_fhir_json(request)
    body = await read_body(request, hub.settings.max_body_bytes)
    doc = unwrap_parameters(parse_strict_json(body))
    issues = check_document(doc, hub.intake.events, load_validator())
    return web.json_response(validation_outcome(issues), content_type=FHIR_JSON)
