"""POST /fhir/$process-message: acceptance, receipts, idempotency and every refusal at the edge."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import uuid
import zlib
from typing import Any

import aiohttp
import asyncpg
import pytest

from service.errors import HANDOVER_ERROR_SYSTEM, NHS_HTTP_ERROR_SYSTEM
from service.identity.signing import payload_sha256, verify_bundle_signature
from service.receipts import receipt_parameters
from tests.support.hub import RunningHub
from tests.support.messages import error_codes, referral


def signed_referral(hub: RunningHub, sender: str = "RM1", receiver: str = "RGT") -> dict[str, Any]:
    return hub.trust(sender).sign(referral(sender, receiver))


def encode(bundle: dict[str, Any]) -> bytes:
    return json.dumps(bundle).encode()


async def table_counts(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            table: await conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608 - fixed table names
            for table in ("messages", "idempotency_keys", "deliveries", "audit_events")
        }
    finally:
        await conn.close()


async def test_valid_referral_is_accepted_with_a_hub_signed_receipt(hub: RunningHub) -> None:
    bundle = signed_referral(hub)
    status, receipt, headers = await hub.post_raw(encode(bundle))
    assert status == 202, receipt
    assert receipt["resourceType"] == "Bundle" and receipt["type"] == "message"
    header = receipt["entry"][0]["resource"]
    assert header["response"] == {"identifier": bundle["entry"][0]["resource"]["id"], "code": "ok"}
    assert header["destination"][0]["receiver"]["identifier"]["value"] == "RM1"
    signature = verify_bundle_signature(receipt, hub.network.registry.hub_key)
    assert signature.owner_ods == "hub"
    params = receipt_parameters(receipt)
    assert (
        params["sha256"]
        == payload_sha256(bundle)
        == hashlib.sha256(
            __import__("rfc8785").dumps({k: v for k, v in bundle.items() if k != "signature"})
        ).hexdigest()
    )
    assert params["message-id"] == headers["X-Handover-Message-ID"]
    assert params["audit-index"] == 0
    assert len(base64.b64decode(params["leaf-hash"])) == 32
    assert params["bundle-identifier"] == bundle["identifier"]["value"]
    assert await table_counts(hub.dsn) == {"messages": 1, "idempotency_keys": 1, "deliveries": 1, "audit_events": 1}


async def test_stored_message_keeps_the_original_bytes_and_metadata(hub: RunningHub) -> None:
    bundle = signed_referral(hub)
    raw = json.dumps(bundle, indent=3).encode()  # unusual whitespace must survive byte for byte
    status, receipt, _ = await hub.post_raw(raw)
    assert status == 202
    conn = await asyncpg.connect(hub.dsn)
    try:
        row = await conn.fetchrow("SELECT * FROM messages")
        leaf = await conn.fetchrow("SELECT leaf, leaf_hash FROM audit_events WHERE seq = 0")
    finally:
        await conn.close()
    assert row["payload"] is None and raw not in bytes(row["payload_ciphertext"]), "encrypted at rest (issue 8)"
    assert (row["sender_ods"], row["recipient_ods"], row["event"]) == ("RM1", "RGT", "referral")
    assert row["bundle_identifier"] == bundle["identifier"]["value"]
    assert row["payload_sha256"] == payload_sha256(bundle)
    assert base64.b64decode(receipt_parameters(receipt)["leaf-hash"]) == hashlib.sha256(b"\0" + leaf["leaf"]).digest()
    assert bytes(leaf["leaf_hash"]) == hashlib.sha256(b"\0" + leaf["leaf"]).digest()
    nhs_number = bundle["entry"][2]["resource"]["identifier"][0]["value"]
    assert b"Testpatient" not in bytes(leaf["leaf"]) and nhs_number.encode() not in bytes(leaf["leaf"])


async def test_retry_with_same_request_id_returns_original_receipt(hub: RunningHub) -> None:
    raw, rid = encode(signed_referral(hub)), str(uuid.uuid4())
    first = await hub.post_raw(raw, request_id=rid)
    second = await hub.post_raw(raw, request_id=rid)
    assert first[0] == second[0] == 202
    assert first[1] == second[1]
    assert second[2].get("X-Handover-Replayed") == "true"
    assert (await table_counts(hub.dsn))["messages"] == 1


async def test_same_request_id_with_another_body_is_idempotency_key_reuse(hub: RunningHub) -> None:
    rid = str(uuid.uuid4())
    assert (await hub.post_raw(encode(signed_referral(hub)), request_id=rid))[0] == 202
    status, body, _ = await hub.post_raw(encode(signed_referral(hub)), request_id=rid)
    assert status == 422 and "idempotency-key-reuse" in error_codes(body)


async def test_same_bundle_identifier_under_a_new_request_id_is_409(hub: RunningHub) -> None:
    raw = encode(signed_referral(hub))
    assert (await hub.post_raw(raw))[0] == 202
    status, body, _ = await hub.post_raw(raw)
    assert status == 409 and "duplicate-message" in error_codes(body)
    assert "REC_CONFLICT" in error_codes(body)


async def test_f15_twenty_concurrent_identical_submissions_store_one_message(hub: RunningHub) -> None:
    raw, rid = encode(signed_referral(hub)), str(uuid.uuid4())
    results = await asyncio.gather(*(hub.post_raw(raw, request_id=rid) for _ in range(20)))
    assert {status for status, _, _ in results} == {202}
    assert len({json.dumps(body, sort_keys=True) for _, body, _ in results}) == 1
    counts = await table_counts(hub.dsn)
    assert counts["messages"] == 1 and counts["deliveries"] == 1


async def test_twenty_concurrent_copies_under_new_request_ids_accept_one_and_409_the_rest(hub: RunningHub) -> None:
    raw = encode(signed_referral(hub))
    results = await asyncio.gather(*(hub.post_raw(raw) for _ in range(20)))
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [202] + [409] * 19
    assert (await table_counts(hub.dsn))["messages"] == 1


async def test_audit_indexes_are_dense_under_concurrency(hub: RunningHub) -> None:
    results = await asyncio.gather(*(hub.post_raw(encode(signed_referral(hub))) for _ in range(15)))
    indexes = sorted(receipt_parameters(body)["audit-index"] for _, body, _ in results)
    assert indexes == list(range(15))


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("text/plain", 415),
        ("application/fhir+xml", 415),
        ("multipart/form-data; boundary=x", 415),
        (None, 415),
        ("application/fhir+json; charset=utf-16", 415),
        ("application/json", 202),
        ("application/fhir+json; charset=UTF-8", 202),
    ],
)
async def test_b3_content_type(hub: RunningHub, content_type: str | None, status: int) -> None:
    headers = {"Content-Type": content_type} if content_type else {"Content-Type": ""}
    got, body, _ = await hub.post_raw(encode(signed_referral(hub)), headers=headers)
    assert got == status, body
    if status == 415:
        assert "unsupported-media-type" in error_codes(body)


def strict_json_cases() -> list[tuple[str, bytes]]:
    return [
        ("empty", b""),
        ("invalid-utf8", b'{"resourceType": "Bundle\xff"}'),
        ("overlong-utf8", b'{"a": "\xc0\xaf"}'),
        ("utf16-bom", "\ufeff{}".encode("utf-16")),
        ("utf8-bom", b"\xef\xbb\xbf{}"),
        ("duplicate-top", b'{"type": "message", "type": "collection"}'),
        ("duplicate-deep", b'{"entry": [{"resource": {"a": 1, "a": 2}}]}'),
        ("nan", b'{"a": NaN}'),
        ("infinity", b'{"a": -Infinity}'),
        ("lone-surrogate", b'{"a": "\\ud800"}'),
        ("big-int", b'{"a": 9007199254740992}'),
        ("huge-digits", b'{"a": ' + b"9" * 5000 + b"}"),
        ("float-overflow", b'{"a": 1e400}'),
        ("deep", b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        ("depth-65", b'{"a":' + b"[" * 64 + b"]" * 64 + b"}"),
        ("trailing", b'{"a": 1} x'),
        ("two-documents", b'{"a": 1}{"b": 2}'),
        ("not-object", b"[1, 2]"),
    ]


@pytest.mark.parametrize(("name", "raw"), strict_json_cases(), ids=[c[0] for c in strict_json_cases()])
async def test_b4_to_b11_strict_json_refusals_are_400_invalid_json(hub: RunningHub, name: str, raw: bytes) -> None:
    status, body, _ = await hub.post_raw(raw)
    assert status == 400, (name, body)
    assert "invalid-json" in error_codes(body)
    counts = await table_counts(hub.dsn)
    assert counts["messages"] == 0 and counts["idempotency_keys"] == 0
    assert counts["audit_events"] == 1, "a refusal stores exactly its own audit event"


async def test_depth_64_is_accepted_by_the_parser(hub: RunningHub) -> None:
    bundle = referral()
    deep: Any = "x"
    for _ in range(50):
        deep = [deep]
    bundle["entry"][1]["resource"]["deep_test"] = deep  # not FHIR: refused later, but not as invalid-json
    status, body, _ = await hub.post_raw(encode(hub.trust("RM1").sign(bundle)))
    assert status == 422 and "profile-violation" in error_codes(body)


async def test_b1_body_over_the_limit_with_content_length_is_413(network: Any, database: str) -> None:
    from tests.support.hub import running_hub

    async with running_hub(network, database, max_body_bytes=4096) as small:
        status, body, _ = await small.post_raw(b"{" + b" " * 10_000 + b"}")
        assert status == 413 and "payload-too-large" in error_codes(body)


async def test_b1_chunked_body_over_the_limit_is_413_before_it_is_all_sent(network: Any, database: str) -> None:
    from tests.support.hub import running_hub

    sent = 0

    async def endless() -> Any:
        nonlocal sent
        while sent < 200 * 1024 * 1024:
            sent += 65536
            yield b" " * 65536

    async with running_hub(network, database, max_body_bytes=64 * 1024) as small:
        headers = {
            "Content-Type": "application/fhir+json",
            "X-Request-ID": str(uuid.uuid4()),
            "Authorization": f"Bearer {small.trust('RM1').bearer_token()}",
        }
        try:
            async with small.session.post(
                f"{small.base_url}/fhir/$process-message", data=endless(), headers=headers
            ) as resp:
                assert resp.status == 413
                assert "payload-too-large" in error_codes(await resp.json(content_type=None))
        except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
            pass  # the hub may close the connection once it has answered; it must not have read it all
        assert sent < 200 * 1024 * 1024


async def test_b2_gzip_bomb_is_413(network: Any, database: str) -> None:
    from tests.support.hub import running_hub

    bomb = gzip.compress(b"{" + b" " * (50 * 1024 * 1024) + b"}", compresslevel=9)
    assert len(bomb) < 100_000
    async with running_hub(network, database, max_body_bytes=1024 * 1024) as small:
        status, body, _ = await small.post_raw(bomb, headers={"Content-Encoding": "gzip"})
        assert status == 413 and "payload-too-large" in error_codes(body)


async def test_gzip_and_deflate_bodies_are_accepted(hub: RunningHub) -> None:
    status, body, _ = await hub.post_raw(
        gzip.compress(encode(signed_referral(hub))), headers={"Content-Encoding": "gzip"}
    )
    assert status == 202, body
    status, body, _ = await hub.post_raw(
        zlib.compress(encode(signed_referral(hub))), headers={"Content-Encoding": "deflate"}
    )
    assert status == 202, body


async def test_b2_unknown_content_encoding_is_415(hub: RunningHub) -> None:
    status, body, _ = await hub.post_raw(encode(signed_referral(hub)), headers={"Content-Encoding": "compress"})
    assert status == 415 and "unsupported-media-type" in error_codes(body)


@pytest.mark.parametrize(
    ("mutate", "code", "status"),
    [
        (lambda b: b.update(type="collection"), "not-a-message", 422),
        (lambda b: b.update(resourceType="Patient"), "not-a-message", 422),
        (lambda b: b["entry"].reverse(), "not-a-message", 422),
        (lambda b: b["entry"][1]["resource"].update(unknownElement=1), "profile-violation", 422),
        (lambda b: b["entry"][2]["resource"].update(resourceType="Nonsense"), "profile-violation", 422),
        (lambda b: b.pop("timestamp"), "profile-violation", 422),
        (lambda b: b["identifier"].update(value="not-a-uuid"), "profile-violation", 422),
        (lambda b: b["entry"][0]["resource"]["eventCoding"].update(code="gossip"), "profile-violation", 422),
        (
            lambda b: b["entry"][0]["resource"]["destination"][0]["receiver"]["identifier"].update(value="ZZZ99"),
            "unknown-recipient",
            422,
        ),
        (
            lambda b: b["entry"][0]["resource"]["destination"][0]["receiver"]["identifier"].update(value="RG\u0422"),
            "profile-violation",
            422,
        ),  # Cyrillic Te: a homoglyph, never normalised
        (
            lambda b: b["entry"][0]["resource"]["destination"][0]["receiver"]["identifier"].update(value="RM1"),
            "profile-violation",
            422,
        ),  # addressed to itself
        (lambda b: b["entry"][0]["resource"]["sender"]["identifier"].update(value="RDE"), "sender-mismatch", 403),
    ],
    ids=[
        "b12-type-collection",
        "b12-not-bundle",
        "b12-header-not-first",
        "b12-unknown-element",
        "b12-wrong-resource-type",
        "no-timestamp",
        "identifier-not-urn-uuid",
        "unknown-event",
        "unknown-recipient",
        "b14-homoglyph-ods",
        "sender-is-receiver",
        "sender-not-caller",
    ],
)
async def test_b12_invalid_messages_are_refused_with_a_stable_code(
    hub: RunningHub, mutate: Any, code: str, status: int
) -> None:
    bundle = referral("RM1", "RGT")
    mutate(bundle)
    got, body, _ = await hub.post_raw(encode(hub.trust("RM1").sign(bundle)))
    assert got == status, body
    assert code in error_codes(body)
    assert (await table_counts(hub.dsn))["messages"] == 0


async def test_unknown_element_reports_where_without_echoing_values(hub: RunningHub) -> None:
    bundle = referral()
    bundle["entry"][2]["resource"]["favouriteColour"] = "SECRET-VALUE-123"
    status, body, _ = await hub.post_raw(encode(hub.trust("RM1").sign(bundle)))
    assert status == 422
    assert "SECRET-VALUE-123" not in json.dumps(body)
    assert any("entry[2].resource.favouriteColour" in e for i in body["issue"] for e in i.get("expression", []))


async def test_every_error_carries_our_code_and_the_nhs_coding(hub: RunningHub) -> None:
    status, body, _ = await hub.post_raw(b"{")
    assert status == 400
    coding = body["issue"][0]["details"]["coding"]
    assert {"system": HANDOVER_ERROR_SYSTEM, "code": "invalid-json"} in coding
    assert {"system": NHS_HTTP_ERROR_SYSTEM, "code": "SEND_BAD_REQUEST"} in coding


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Request-ID": "not-a-uuid"},
        {"X-Request-ID": "1" * 5000},
        {"X-Correlation-ID": "abc"},
        {"X-Request-ID": "6f1c2a4e-0000-4000-8000-00000000000g"},
    ],
    ids=["request-id-not-uuid", "request-id-oversized", "correlation-id-not-uuid", "request-id-bad-hex"],
)
async def test_b15_malformed_id_headers_are_400_bad_header(hub: RunningHub, headers: dict[str, str]) -> None:
    status, body, _ = await hub.post_raw(encode(signed_referral(hub)), headers=headers)
    assert status == 400 and "bad-header" in error_codes(body)


async def test_missing_request_id_is_400_bad_header(hub: RunningHub) -> None:
    token = hub.trust("RM1").bearer_token()
    async with hub.session.post(
        f"{hub.base_url}/fhir/$process-message",
        data=encode(signed_referral(hub)),
        headers={"Content-Type": "application/fhir+json", "Authorization": f"Bearer {token}"},
    ) as resp:
        assert resp.status == 400 and "bad-header" in error_codes(await resp.json(content_type=None))


@pytest.mark.parametrize("authorization", [None, "Basic abc", "Bearer x.y", "Bearer a.e30.c", "Bearer " + "a" * 5000])
async def test_caller_without_a_usable_bearer_token_is_401(hub: RunningHub, authorization: str | None) -> None:
    headers = {"Content-Type": "application/fhir+json", "X-Request-ID": str(uuid.uuid4())}
    if authorization:
        headers["Authorization"] = authorization
    async with hub.session.post(
        f"{hub.base_url}/fhir/$process-message", data=encode(signed_referral(hub)), headers=headers
    ) as resp:
        assert resp.status == 401 and "unauthenticated" in error_codes(await resp.json(content_type=None))


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/fhir/$process-message", 405, "method-not-allowed"),
        ("DELETE", "/fhir/metadata", 405, "method-not-allowed"),
        ("GET", "/no/such/path", 404, "not-found"),
        ("PATCH", "/mailbox/RGT/inbox", 405, "method-not-allowed"),
        ("GET", "/fhir/Patient/123", 404, "not-found"),
    ],
)
async def test_b16_undeclared_methods_and_paths(
    hub: RunningHub, method: str, path: str, status: int, code: str
) -> None:
    async with hub.session.request(method, f"{hub.base_url}{path}") as resp:
        assert resp.status == status
        assert code in error_codes(await resp.json(content_type=None))


async def test_headers_beyond_the_servers_line_limit_are_400_not_5xx(hub: RunningHub) -> None:
    headers = {
        "Content-Type": "application/fhir+json",
        "X-Request-ID": str(uuid.uuid4()),
        "Authorization": "Bearer " + "a" * 9000,
    }
    async with hub.session.post(f"{hub.base_url}/fhir/$process-message", data=b"{}", headers=headers) as resp:
        assert resp.status == 400
