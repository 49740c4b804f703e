"""POST /fhir/$canonicalize: canonical bytes and SHA-256 of a posted Bundle, and why its signature fails.

An onboarding aid: no token needed, nothing stored, strict JSON and the body limit as on $process-message.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from service.app import build_app
from service.http import onboarding
from service.identity.signing import (
    ODS_SYSTEM,
    SIGNATURE_TYPE_CODE,
    SIGNATURE_TYPE_SYSTEM,
    canonical_bytes,
    payload_sha256,
    thumbprint,
)
from tests.support.hub import Network, RunningHub, free_port, settings_for
from tests.support.messages import error_codes, referral

ROUTE = "/fhir/$canonicalize"
VECTORS = Path(__file__).resolve().parents[2] / "fhir_profiles" / "signing-vectors"
FHIR_JSON = {"Content-Type": "application/fhir+json"}


@asynccontextmanager
async def running_hub_with_canonicalize(network: Network, dsn: str, **overrides: Any) -> AsyncIterator[RunningHub]:
    """tests.support.hub.running_hub, with the $canonicalize route added if service/app.py lacks it."""
    port = free_port()
    settings = settings_for(network, dsn, port, **overrides)
    app = build_app(settings, dsn)
    if not any(route.resource is not None and route.resource.canonical == ROUTE for route in app.router.routes()):
        app.router.add_post(ROUTE, onboarding.canonicalize)
    runner = web.AppRunner(app, auto_decompress=False, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            yield RunningHub(f"http://127.0.0.1:{port}", settings, dsn, network, session, app)
    finally:
        await runner.cleanup()


@pytest.fixture
async def hub(network: Network, database: str) -> AsyncIterator[RunningHub]:
    async with running_hub_with_canonicalize(network, database) as running:
        yield running


async def post(
    hub: RunningHub, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with hub.session.post(f"{hub.base_url}{ROUTE}", data=body, headers=headers or FHIR_JSON) as resp:
        return resp.status, json.loads(await resp.read()), dict(resp.headers)


async def check(hub: RunningHub, bundle: dict[str, Any]) -> dict[str, Any]:
    status, body, _ = await post(hub, json.dumps(bundle).encode())
    assert status == 200, body
    check: dict[str, Any] = body["signature_check"]
    return check


async def table_counts(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            table: await conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608 - fixed table names
            for table in ("messages", "audit_events", "idempotency_keys", "deliveries")
        }
    finally:
        await conn.close()


# ---------------------------------------------------------------- hand-made signatures, to get them wrong


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def es256_raw(private: dict[str, Any], signing_input: bytes) -> bytes:
    key = ec.derive_private_key(int.from_bytes(unb64u(private["d"]), "big"), ec.SECP256R1())
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def with_jws(bundle: dict[str, Any], compact: str, who: str = "RM1") -> dict[str, Any]:
    """A copy of `bundle` whose Bundle.signature carries `compact` (as the contract lays it out)."""
    signed = copy.deepcopy(bundle)
    signed["signature"] = {
        "type": [{"system": SIGNATURE_TYPE_SYSTEM, "code": SIGNATURE_TYPE_CODE}],
        "when": "2026-11-24T10:00:00Z",
        "who": {"identifier": {"system": ODS_SYSTEM, "value": who}},
        "sigFormat": "application/jose",
        "data": base64.b64encode(compact.encode()).decode(),
    }
    return signed


def hand_signed(
    hub: RunningHub, bundle: dict[str, Any], payload: bytes, *, header_extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`bundle` signed by RM1's registered key, over `payload` (base64url-encoded into the signing input)."""
    private = hub.network.private_key("RM1")
    header = {"alg": "ES256", "kid": thumbprint(private), "typ": "handover+jws", **(header_extra or {})}
    header_b64 = b64u(json.dumps(header, separators=(",", ":")).encode())
    raw = es256_raw(private, f"{header_b64}.{b64u(payload)}".encode())
    return with_jws(bundle, f"{header_b64}..{b64u(raw)}")


def with_non_ascii_name(bundle: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(bundle)
    for entry in changed["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            entry["resource"]["name"][0]["family"] = "Ó Briain"
            entry["resource"]["name"][0]["given"] = ["Zoë"]
    return changed


# ---------------------------------------------------------------- the canonical form


async def test_unsigned_bundle_gets_the_canonical_bytes_and_sha256_of_service_signing(hub: RunningHub) -> None:
    bundle = with_non_ascii_name(referral())
    status, body, headers = await post(hub, json.dumps(bundle, indent=4).encode())
    assert status == 200, body
    assert headers["Content-Type"].startswith("application/json")
    assert body["canonical"].encode("utf-8") == canonical_bytes(bundle)
    assert base64.b64decode(body["canonical_base64"]) == canonical_bytes(bundle)
    assert body["canonical_length"] == len(canonical_bytes(bundle))
    assert body["sha256"] == payload_sha256(bundle)
    assert body["signature_removed"] is False
    assert body["signing_input_hint"] == "BASE64URL(protected header) + '.' + BASE64URL(canonical bytes)"
    assert "signature_check" not in body


async def test_published_vector_canonicalises_to_the_published_bytes(hub: RunningHub) -> None:
    status, body, _ = await post(hub, (VECTORS / "unsigned-bundle.json").read_bytes())
    assert status == 200, body
    assert base64.b64decode(body["canonical_base64"]) == (VECTORS / "canonical.json").read_bytes()
    assert body["sha256"] == (VECTORS / "canonical.sha256").read_text().strip()


async def test_signature_is_removed_and_a_good_signature_is_reported_valid(hub: RunningHub) -> None:
    bundle = referral()
    signed = hub.trust("RM1").sign(bundle)
    status, body, _ = await post(hub, json.dumps(signed).encode())
    assert status == 200
    assert body["signature_removed"] is True
    assert body["sha256"] == payload_sha256(bundle) == hashlib.sha256(canonical_bytes(signed)).hexdigest()
    result = body["signature_check"]
    assert result["valid"] is True and result["error"] is None
    assert result["kid_registered"] is True
    assert result["key"] == {"owner": "RM1", "alg": "ES256", "status": "active"}
    assert result["signer_matches_sender"] is True
    assert result["hints"] == []
    assert result["protected_header"]["kid"] == thumbprint(hub.network.private_key("RM1"))


# ---------------------------------------------------------------- why a signature fails


async def test_tampered_bundle_is_explained_as_not_verifying_over_these_canonical_bytes(hub: RunningHub) -> None:
    signed = hub.trust("RM1").sign(referral())
    signed["timestamp"] = "2020-01-01T00:00:00Z"
    result = await check(hub, signed)
    assert result["valid"] is False and result["kid_registered"] is True
    assert result["error"]["code"] == "signature-invalid"
    assert any("does not verify over these canonical bytes" in hint for hint in result["hints"])


async def test_signature_over_sorted_but_not_canonical_json_is_recognised(hub: RunningHub) -> None:
    bundle = with_non_ascii_name(referral())
    not_jcs = json.dumps(bundle, sort_keys=True, separators=(",", ":")).encode()  # escapes ë as \u00eb
    assert not_jcs != canonical_bytes(bundle)
    result = await check(hub, hand_signed(hub, bundle, not_jcs))
    assert result["valid"] is False and result["error"]["code"] == "signature-invalid"
    assert any("sorted keys but not RFC 8785" in hint for hint in result["hints"]), result["hints"]


async def test_b64_false_header_is_named_and_the_raw_payload_signature_recognised(hub: RunningHub) -> None:
    bundle = referral()
    private = hub.network.private_key("RM1")
    header = {"alg": "ES256", "kid": thumbprint(private), "typ": "handover+jws", "b64": False, "crit": ["b64"]}
    header_b64 = b64u(json.dumps(header).encode())
    raw = es256_raw(private, header_b64.encode() + b"." + canonical_bytes(bundle))
    result = await check(hub, with_jws(bundle, f"{header_b64}..{b64u(raw)}"))
    assert result["valid"] is False and result["error"]["code"] == "signature-invalid"
    assert "b64" in result["error"]["text"]
    assert any("b64/crit" in hint for hint in result["hints"])
    assert any("canonical bytes themselves" in hint for hint in result["hints"])


async def test_unknown_kid_is_reported_without_verifying(hub: RunningHub) -> None:
    result = await check(hub, json.loads((VECTORS / "signed-ed25519.json").read_bytes()))
    assert result["valid"] is False and result["kid_registered"] is False and result["key"] is None
    assert result["error"]["code"] == "unknown-key"
    assert any("not in the network registry" in hint for hint in result["hints"])
    assert result["protected_header"]["alg"] == "Ed25519"


async def test_der_encoded_es256_signature_is_named(hub: RunningHub) -> None:
    signed = hub.trust("RM1").sign(referral())
    header_b64, _, signature_b64 = base64.b64decode(signed["signature"]["data"]).decode().split(".")
    raw = unb64u(signature_b64)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    signed["signature"]["data"] = base64.b64encode(f"{header_b64}..{b64u(der)}".encode()).decode()
    result = await check(hub, signed)
    assert result["valid"] is False and result["error"]["code"] == "signature-invalid"
    assert any("DER-encoded" in hint for hint in result["hints"])


async def test_attached_payload_is_compared_with_the_canonical_bytes(hub: RunningHub) -> None:
    bundle = referral()
    signed = hub.trust("RM1").sign(bundle)
    header_b64, _, signature_b64 = base64.b64decode(signed["signature"]["data"]).decode().split(".")
    attached = f"{header_b64}.{b64u(canonical_bytes(bundle))}.{signature_b64}"
    signed["signature"]["data"] = base64.b64encode(attached.encode()).decode()
    result = await check(hub, signed)
    assert result["valid"] is False
    assert any("payload is attached: detach it" in hint for hint in result["hints"])

    other = f"{header_b64}.{b64u(json.dumps(bundle).encode())}.{signature_b64}"
    signed["signature"]["data"] = base64.b64encode(other.encode()).decode()
    result = await check(hub, signed)
    assert any("first differ at byte offset 2" in hint for hint in result["hints"]), result["hints"]


async def test_compact_jws_not_base64_encoded_and_refused_header_parameters_are_named(hub: RunningHub) -> None:
    bundle = referral()
    signed = hand_signed(hub, bundle, canonical_bytes(bundle), header_extra={"jku": "https://example.org/k"})
    signed["signature"]["data"] = base64.b64decode(signed["signature"]["data"]).decode()
    result = await check(hub, signed)
    assert result["valid"] is False
    assert any("holds the compact JWS itself" in hint for hint in result["hints"])
    assert any("the header has jku" in hint for hint in result["hints"])


async def test_valid_signature_by_a_key_not_owning_the_sender_is_flagged(hub: RunningHub) -> None:
    signed = hub.trust("RM1").sign(referral(sender="RDE"))
    result = await check(hub, signed)
    assert result["valid"] is True and result["signer_matches_sender"] is False
    assert any("key belongs to RM1" in hint for hint in result["hints"])
    assert any("Bundle.signature.who must identify the sender" in hint for hint in result["hints"])


# ---------------------------------------------------------------- refusals, and nothing stored


@pytest.mark.parametrize(
    "body",
    [
        b'{"resourceType": "Bundle", "type": "message", "type": "batch"}',
        b'{"resourceType": "Bundle", "total": NaN}',
        b'{"resourceType": "Bundle", "id": "\xff"}',
        b'{"resourceType": "Bundle", "total": 9007199254740993}',
        b"[]",
        b"",
    ],
)
async def test_strict_json_errors_are_400_invalid_json(hub: RunningHub, body: bytes) -> None:
    status, outcome, _ = await post(hub, body)
    assert status == 400
    assert "invalid-json" in error_codes(outcome)


async def test_wrong_content_type_is_415(hub: RunningHub) -> None:
    status, outcome, _ = await post(hub, json.dumps(referral()).encode(), {"Content-Type": "text/plain"})
    assert status == 415
    assert "unsupported-media-type" in error_codes(outcome)


async def test_a_resource_that_is_not_a_bundle_is_422(hub: RunningHub) -> None:
    status, outcome, _ = await post(hub, b'{"resourceType": "Patient"}')
    assert status == 422
    assert "not-a-message" in error_codes(outcome)


async def test_body_limit_applies(network: Network, database: str) -> None:
    async with running_hub_with_canonicalize(network, database, max_body_bytes=2048) as small:
        status, outcome, _ = await post(small, json.dumps(referral()).encode())
    assert status == 413
    assert "payload-too-large" in error_codes(outcome)


async def test_nothing_is_stored(hub: RunningHub) -> None:
    signed = hub.trust("RM1").sign(referral())
    for body in (json.dumps(signed).encode(), json.dumps(referral()).encode(), b"{", b'{"resourceType": "x"}'):
        await post(hub, body)
    tampered = copy.deepcopy(signed)
    tampered["id"] = "changed"
    await post(hub, json.dumps(tampered).encode())
    assert await table_counts(hub.dsn) == {"messages": 0, "audit_events": 0, "idempotency_keys": 0, "deliveries": 0}
