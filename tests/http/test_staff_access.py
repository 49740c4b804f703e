"""Staff sign-in: tokens from the staff identity provider, roles, and the ops registry reload."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from service.identity.keystore import generate_private_jwk
from service.identity.signing import sign_compact_jwt
from service.identity.staff import DEV_ISSUER
from tests.support.hub import RunningHub
from tests.support.messages import error_codes


async def reload(hub: RunningHub, token: str | None) -> tuple[int, dict]:  # type: ignore[type-arg]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with hub.session.post(f"{hub.base_url}/ops/reload-registry", headers=headers) as resp:
        return resp.status, json.loads(await resp.read())


async def test_ops_staff_can_reload_the_registry(hub: RunningHub) -> None:
    status, body = await reload(hub, hub.staff_token("ops"))
    assert status == 200
    assert body["reloaded"] is True


async def test_governance_staff_may_not_reload(hub: RunningHub) -> None:
    status, body = await reload(hub, hub.staff_token("governance"))
    assert status == 403
    assert "forbidden" in error_codes(body)


async def test_trust_token_is_not_a_staff_token(hub: RunningHub) -> None:
    status, body = await reload(hub, hub.trust("RGT").bearer_token())
    assert status == 401
    assert "unauthenticated" in error_codes(body)


async def test_missing_or_foreign_staff_token_is_401(hub: RunningHub) -> None:
    assert (await reload(hub, None))[0] == 401
    now = int(time.time())
    forged = sign_compact_jwt(
        {
            "iss": DEV_ISSUER,
            "sub": "mallory",
            "aud": "handover",
            "role": "ops",
            "iat": now,
            "exp": now + 60,
            "jti": str(uuid.uuid4()),
        },
        generate_private_jwk(),
    )
    status, body = await reload(hub, forged)
    assert status == 401
    assert "unauthenticated" in error_codes(body)


async def test_a_bad_registry_file_is_refused_and_the_old_one_kept(hub: RunningHub, tmp_path: Path) -> None:
    original = hub.network.network_path.read_text()
    try:
        hub.network.network_path.write_text("{")
        status, body = await reload(hub, hub.staff_token("ops"))
        assert status == 422
        assert body["reloaded"] is False
    finally:
        hub.network.network_path.write_text(original)
    client = hub.trust("RM1")
    from tests.support.messages import referral

    assert (await client.send(client.sign(referral()))).accepted


async def audit_events(hub: RunningHub, event_type: str) -> list[dict]:  # type: ignore[type-arg]
    import asyncpg

    conn = await asyncpg.connect(hub.dsn)
    try:
        rows = await conn.fetch("SELECT actor, leaf FROM audit_events WHERE event_type = $1 ORDER BY seq", event_type)
    finally:
        await conn.close()
    return [{"actor": r["actor"], "leaf": json.loads(r["leaf"])} for r in rows]


async def test_a_staff_sign_in_is_audited_once_per_token(hub: RunningHub) -> None:
    token = hub.staff_token("governance", user="g.reader")
    for _ in range(3):
        async with hub.session.get(f"{hub.base_url}/episodes", headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200
    logins = await audit_events(hub, "staff-login")
    assert [e["actor"] for e in logins] == ["g.reader"]
    assert logins[0]["leaf"]["details"]["role"] == "governance"


async def test_registry_reload_audits_each_key_change(hub: RunningHub, tmp_path: Path) -> None:
    from service.identity.keystore import rotate_key

    original = hub.network.network_path.read_text()
    private = (hub.network.keys_dir / "RGP.jwk").read_bytes()
    try:
        report = rotate_key(hub.network.network_path, hub.network.keys_dir, "RGP")
        status, body = await reload(hub, hub.staff_token("ops", user="o.operator"))
        assert status == 200
        assert body["reloaded"] is True
        changes = await audit_events(hub, "key-changed")
        by_kid = {e["leaf"]["details"]["kid"]: e for e in changes}
        assert by_kid[report.new_kid]["leaf"]["details"] == {
            "kid": report.new_kid,
            "change": "added",
            "owner": "RGP",
            "status": "active",
        }
        assert all(e["actor"] == "o.operator" for e in changes)
        assert len(changes) == 2  # the new key added, the old one changed to retiring
    finally:
        hub.network.network_path.write_text(original)
        (hub.network.keys_dir / "RGP.jwk").write_bytes(private)
        await reload(hub, hub.staff_token("ops"))


async def test_d5_governance_reads_a_payload_only_with_a_reason_and_it_is_audited(hub: RunningHub) -> None:
    from tests.support.messages import referral

    client = hub.trust("RM1")
    signed = client.sign(referral())
    result = await client.send(signed)
    message_id = result.body["entry"][1]["resource"]["parameter"][0]["valueString"]
    url = f"{hub.base_url}/governance/messages/{message_id}"

    async def read(token: str, reason: str | None) -> tuple[int, bytes]:
        params = {"reason": reason} if reason is not None else {}
        async with hub.session.get(url, params=params, headers={"Authorization": f"Bearer {token}"}) as resp:
            return resp.status, await resp.read()

    assert (await read(hub.staff_token("governance"), None))[0] == 400
    assert (await read(hub.staff_token("governance"), "why"))[0] == 400
    assert (await read(hub.staff_token("ops"), "Complaint investigation ref C-123"))[0] == 403
    assert (await read(client.bearer_token(), "Complaint investigation ref C-123"))[0] == 401
    status, body = await read(hub.staff_token("governance", user="g.reader"), "Complaint investigation ref C-123")
    assert status == 200
    assert json.loads(body)["signature"] == signed["signature"]
    [event] = await audit_events(hub, "payload-read")
    assert event["actor"] == "g.reader"
    assert event["leaf"]["message_id"] == message_id
    assert event["leaf"]["details"]["reason"] == "Complaint investigation ref C-123"
