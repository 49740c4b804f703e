"""Issue 4 at the front door: every accepted message is verifiably from its caller, and every refusal says why.

S-catalogue cases that need the running hub (the signature corpus itself is in
tests/identity/test_signing_refusals.py), and the bearer-token rules: replay, expiry, audience, lifetime, unknown or
foreign keys, revocation.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from service.identity.signing import sign_bundle, sign_compact_jwt
from tests.support.hub import Network, RunningHub, running_hub
from tests.support.messages import error_codes, referral


def encode(bundle: dict[str, Any]) -> bytes:
    return json.dumps(bundle).encode()


async def message_count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM messages"))
    finally:
        await conn.close()


async def post_with_token(hub: RunningHub, body: bytes, token: str) -> tuple[int, dict[str, Any]]:
    headers = {
        "Content-Type": "application/fhir+json",
        "X-Request-ID": str(uuid.uuid4()),
        "Authorization": f"Bearer {token}",
    }
    async with hub.session.post(f"{hub.base_url}/fhir/$process-message", data=body, headers=headers) as resp:
        return resp.status, json.loads(await resp.read())


async def test_s1_missing_signature_is_401_signature_missing(hub: RunningHub) -> None:
    status, body, _ = await hub.post_raw(encode(referral()))
    assert status == 401
    assert "signature-missing" in error_codes(body)
    assert await message_count(hub.dsn) == 0


async def test_s8_payload_changed_by_one_character_is_401_signature_invalid(hub: RunningHub) -> None:
    signed = hub.trust("RM1").sign(referral())
    signed["entry"][1]["resource"]["note"][0]["text"] += "."
    status, body, _ = await hub.post_raw(encode(signed))
    assert status == 401
    assert "signature-invalid" in error_codes(body)


async def test_s8_whitespace_key_order_and_number_form_do_not_break_the_signature(hub: RunningHub) -> None:
    bundle = referral()
    bundle["entry"][2]["resource"]["multipleBirthInteger"] = 1
    signed = hub.trust("RM1").sign(bundle)
    reordered = dict(reversed(list(signed.items())))
    text = json.dumps(reordered, indent=4).replace('"multipleBirthInteger": 1', '"multipleBirthInteger": 1.0')
    assert '"multipleBirthInteger": 1.0' in text
    status, body, _ = await hub.post_raw(text.encode())
    assert status == 202, body


async def test_s9_message_signed_by_another_trust_is_403_sender_mismatch(hub: RunningHub) -> None:
    # RDE signs a message claiming to be from RM1, and RM1 (the caller) posts it.
    bundle = referral("RM1")
    forged = sign_bundle(bundle, hub.network.private_key("RDE"), "RM1")
    status, body, _ = await hub.post_raw(encode(forged), as_ods="RM1")
    assert status == 403
    assert "sender-mismatch" in error_codes(body)


async def test_s9_caller_other_than_the_signer_is_403_sender_mismatch(hub: RunningHub) -> None:
    signed = hub.trust("RM1").sign(referral("RM1"))
    status, body, _ = await hub.post_raw(encode(signed), as_ods="RDE")
    assert status == 403
    assert "sender-mismatch" in error_codes(body)


async def test_signature_who_other_than_the_sender_is_403(hub: RunningHub) -> None:
    signed = hub.trust("RM1").sign(referral("RM1"))
    signed["signature"]["who"]["identifier"]["value"] = "RDE"  # outside the signed bytes, but must agree
    status, body, _ = await hub.post_raw(encode(signed))
    assert status == 403
    assert "sender-mismatch" in error_codes(body)


async def test_s11_same_signed_bundle_with_a_new_request_id_is_409(hub: RunningHub) -> None:
    raw = encode(hub.trust("RM1").sign(referral()))
    assert (await hub.post_raw(raw))[0] == 202
    status, body, _ = await hub.post_raw(raw)
    assert status == 409
    assert "duplicate-message" in error_codes(body)


@pytest.mark.parametrize(("shift", "label"), [(timedelta(hours=-25), "old"), (timedelta(minutes=10), "future")])
async def test_f17_timestamp_outside_the_window_is_422_stale_message(
    hub: RunningHub, shift: timedelta, label: str
) -> None:
    bundle = referral()
    bundle["timestamp"] = (datetime.now(UTC) + shift).isoformat(timespec="seconds")
    status, body, _ = await hub.post_raw(encode(hub.trust("RM1").sign(bundle)))
    assert status == 422, label
    assert "stale-message" in error_codes(body)


async def test_token_replay_is_401(hub: RunningHub) -> None:
    client = hub.trust("RM1")
    token = client.bearer_token()
    first = await post_with_token(hub, encode(client.sign(referral())), token)
    second = await post_with_token(hub, encode(client.sign(referral())), token)
    assert first[0] == 202
    assert second[0] == 401
    assert "unauthenticated" in error_codes(second[1])


def token_for(hub: RunningHub, ods: str, **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": ods, "sub": ods, "aud": "handover", "iat": now, "exp": now + 240, "jti": str(uuid.uuid4())}
    claims.update({k: v(now) if callable(v) else v for k, v in overrides.items()})  # times relative to now
    claims = {k: v for k, v in claims.items() if v is not None}
    return sign_compact_jwt(claims, hub.network.private_key(ods))


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"exp": lambda now: now - 10, "iat": lambda now: now - 100}, "unauthenticated"),
        ({"aud": "someone-else"}, "unauthenticated"),
        ({"aud": None}, "unauthenticated"),
        ({"exp": lambda now: now + 3600}, "unauthenticated"),
        ({"iss": "RDE"}, "unauthenticated"),
        ({"sub": "RDE"}, "unauthenticated"),
        ({"jti": None}, "unauthenticated"),
        ({"iat": lambda now: now + 900, "exp": lambda now: now + 1000}, "stale-message"),
    ],
    ids=[
        "expired",
        "wrong-audience",
        "no-audience",
        "lifetime-over-5-minutes",
        "iss-other-trust",
        "sub-other-trust",
        "no-jti",
        "issued-in-the-future",
    ],
)
async def test_bearer_token_rules(hub: RunningHub, overrides: dict[str, Any], code: str) -> None:
    status, body = await post_with_token(
        hub, encode(hub.trust("RM1").sign(referral())), token_for(hub, "RM1", **overrides)
    )
    assert status in (401, 422)
    assert code in error_codes(body)
    assert await message_count(hub.dsn) == 0


async def test_token_signed_with_the_hub_key_is_refused(hub: RunningHub) -> None:
    now = int(time.time())
    token = sign_compact_jwt(
        {"iss": "RM1", "sub": "RM1", "aud": "handover", "iat": now, "exp": now + 60, "jti": str(uuid.uuid4())},
        hub.network.private_key("hub"),
    )
    status, body = await post_with_token(hub, encode(hub.trust("RM1").sign(referral())), token)
    assert status == 401
    assert "unknown-key" in error_codes(body)


async def test_token_with_alg_none_is_refused(hub: RunningHub) -> None:
    import base64

    def b64(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(time.time())
    token = (
        b64({"alg": "none", "typ": "JWT"})
        + "."
        + b64({"iss": "RM1", "sub": "RM1", "aud": "handover", "iat": now, "exp": now + 60, "jti": "x"})
        + ".c2ln"
    )
    status, body = await post_with_token(hub, encode(hub.trust("RM1").sign(referral())), token)
    assert status == 401
    assert "unauthenticated" in error_codes(body)


def revoke_all_keys_of(ods: str, at: datetime) -> Any:
    def edit(doc: dict[str, Any]) -> None:
        for key in doc["participants"][ods]["jwks"]["keys"]:
            key["status"] = "revoked"
            key["revoked_at"] = at.isoformat()

    return edit


async def test_s12_message_signed_after_revocation_is_refused(network: Network, database: str, tmp_path: Path) -> None:
    revoked = network.edited(tmp_path, revoke_all_keys_of("RM1", datetime.now(UTC) - timedelta(hours=1)))
    async with running_hub(revoked, database) as hub:
        status, body, _ = await hub.post_raw(encode(hub.trust("RM1").sign(referral())))
        assert status == 403
        assert "key-revoked" in error_codes(body)


async def test_s12_message_signed_before_revocation_stays_verifiable(
    network: Network, database: str, tmp_path: Path
) -> None:
    from service.identity.signing import verify_bundle_signature

    async with running_hub(network, database) as hub:
        signed = hub.trust("RM1").sign(referral())
        assert (await hub.post_raw(encode(signed)))[0] == 202
    later = network.edited(tmp_path, revoke_all_keys_of("RM1", datetime.now(UTC) + timedelta(seconds=1)))
    verified = verify_bundle_signature(signed, later.registry.key)
    assert verified.key is not None
    assert not verified.key.is_revoked_at(datetime.fromisoformat(signed["timestamp"]))


async def test_former_participant_cannot_send(hub: RunningHub) -> None:
    assert not hub.network.registry.is_participant("RN5")
    status, body, _ = await hub.post_raw(encode(hub.trust("RM1").sign(referral("RM1", "RN5"))))
    assert status == 422
    assert "unknown-recipient" in error_codes(body)


async def test_a_value_the_model_library_trips_over_is_422_not_500(hub: RunningHub) -> None:
    """A url given as a number made fhir.resources raise AttributeError, which intake answered with a 500."""
    bundle = referral()
    bundle["entry"][0]["resource"]["source"]["endpoint"] = 7
    status, body, _ = await hub.post_raw(encode(hub.trust("RM1").sign(bundle)))
    assert status == 422
    assert "profile-violation" in error_codes(body)
    assert await message_count(hub.dsn) == 0
