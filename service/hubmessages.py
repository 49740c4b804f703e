"""Messages the hub itself writes (receipts, safety-net alerts, non-delivery reports): their envelope and the
hub's signature, in the same detached-JWS format as trust messages."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from service.identity.signing import sign_own_bundle
from service.terminology import ODS_SYSTEM, RFC3986_SYSTEM

HUB_IDENTIFIER_SYSTEM = "https://handover.nhs.example/fhir/Id/hub"
# What json.dumps(..., separators=(",", ":"), ensure_ascii=False) builds on every call, built once: the same bytes.
_WIRE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def new_uuids(count: int) -> list[str]:
    """`count` random (version 4) UUIDs as text, made as `uuid.uuid4` makes them but from one `os.urandom` read
    (uuid4 reads once per UUID: a system call each)."""
    random = os.urandom(16 * count)
    return [str(uuid.UUID(bytes=random[i : i + 16], version=4)) for i in range(0, 16 * count, 16)]


def hub_header(
    *,
    event_system: str,
    event: str,
    to_ods: str,
    response: dict[str, Any],
    software: str = "Handover",
    focus: list[str] | None = None,
    header_id: str | None = None,
) -> dict[str, Any]:
    """A MessageHeader from the hub to `to_ods`; `focus` lists fullUrls of entries; `header_id` (default: a fresh
    UUID) is its id."""
    header: dict[str, Any] = {
        "resourceType": "MessageHeader",
        "id": str(uuid.uuid4()) if header_id is None else header_id,
        "eventCoding": {"system": event_system, "code": event},
        "destination": [
            {"endpoint": f"urn:ods:{to_ods}", "receiver": {"identifier": {"system": ODS_SYSTEM, "value": to_ods}}}
        ],
        "source": {"endpoint": "urn:handover:hub", "software": software},
        "response": response,
    }
    if focus:
        header["focus"] = [{"reference": url} for url in focus]
    return header


def signed_hub_message(
    entries: list[dict[str, Any]],
    *,
    at: datetime,
    hub_private_jwk: Mapping[str, Any],
    plain: bool = False,
    ids: tuple[str, str] | None = None,
) -> tuple[dict[str, Any], bytes]:
    """The message Bundle of `entries` (resources with ids; the MessageHeader first), signed by the hub, and
    the exact bytes to store and send. `plain`: the caller knows `entries` hold only what
    `service.canonical.canonical_json_of_plain` allows (the receipt), which spares the canonical form its walk.
    `ids`: the Bundle's id and the UUID of its identifier (default: two fresh UUIDs)."""
    bundle_id, identifier = new_uuids(2) if ids is None else ids
    bundle = {
        "resourceType": "Bundle",
        "id": bundle_id,
        "type": "message",
        "identifier": {"system": RFC3986_SYSTEM, "value": f"urn:uuid:{identifier}"},
        "timestamp": at.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "entry": [{"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource} for resource in entries],
    }
    signed = sign_own_bundle(bundle, hub_private_jwk, "hub", when=at, plain=plain)
    # `who` is outside the signed payload; the hub has no ODS code, so it is named by its own identifier.
    signed["signature"]["who"] = {
        "identifier": {"system": HUB_IDENTIFIER_SYSTEM, "value": "hub"},
        "display": "Handover hub",
    }
    return signed, _WIRE.encode(signed).encode("utf-8")
