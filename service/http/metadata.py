"""GET /fhir/metadata: the CapabilityStatement (FHIR R4, messaging, the supported events)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from service.http.context import services
from service.terminology import CodeSystem

SOFTWARE_VERSION = "0.1.0"


def capability_statement(events: CodeSystem) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "id": "handover",
        "status": "active",
        "date": "2026-11-25",
        "kind": "instance",
        "software": {"name": "Handover", "version": SOFTWARE_VERSION},
        "implementation": {"description": "Handover: secure messaging for NHS trust-to-trust patient handover"},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "description": "Bearer JWT signed with the calling trust's registered key (iss = sub = ODS code, "
                    "aud = handover); messages carry a detached JWS over their RFC 8785 form in Bundle.signature."
                },
                "operation": [
                    {
                        "name": "process-message",
                        "definition": "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message",
                    }
                ],
            }
        ],
        "messaging": [
            {
                "endpoint": [
                    {
                        "protocol": {
                            "system": "http://terminology.hl7.org/CodeSystem/message-transport",
                            "code": "http",
                        },
                        "address": "$process-message",
                    }
                ],
                "reliableCache": 0,
                "documentation": "Submit signed message Bundles with POST /fhir/$process-message; collect yours from "
                "/mailbox/{ods}/inbox or by push to your registered endpoint.",
                "supportedMessage": [
                    {"mode": mode, "definition": f"{events.url.rsplit('/CodeSystem/', 1)[0]}/MessageDefinition/{code}"}
                    for code in sorted(events.codes)
                    for mode in ("receiver", "sender")
                ],
            }
        ],
    }


async def metadata(request: web.Request) -> web.Response:
    events = services(request).intake.events
    return web.json_response(capability_statement(events), content_type="application/fhir+json")
