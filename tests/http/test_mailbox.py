"""Pull delivery: a trust lists, fetches (original signed bytes) and acknowledges only its own messages."""

from __future__ import annotations

import json
import uuid

import asyncpg

from tests.support.hub import RunningHub
from tests.support.messages import error_codes, referral


async def send_referral(hub: RunningHub, sender: str = "RM1") -> tuple[dict, str]:  # type: ignore[type-arg]
    signed = hub.trust(sender).sign(referral(sender))
    result = await hub.trust(sender).send(signed)
    assert result.accepted, result.body
    return signed, result.body["entry"][1]["resource"]["parameter"][0]["valueString"]


async def test_referral_reaches_the_centre_mailbox_with_original_signed_bytes(hub: RunningHub) -> None:
    signed, message_id = await send_referral(hub)
    centre = hub.trust("RGT")
    inbox = await centre.inbox()
    assert [item["id"] for item in inbox] == [message_id]
    assert inbox[0]["sender"] == "RM1" and inbox[0]["event"] == "referral"
    fetched, signature = await centre.fetch(message_id)
    assert fetched == signed and signature.owner_ods == "RM1"


async def test_fetch_returns_the_exact_bytes_posted(hub: RunningHub) -> None:
    signed = hub.trust("RM1").sign(referral())
    raw = json.dumps(signed, indent=1, ensure_ascii=False).encode()
    status, _, headers = await hub.post_raw(raw)
    assert status == 202
    token = hub.trust("RGT").bearer_token()
    url = f"{hub.base_url}/mailbox/RGT/inbox/{headers['X-Handover-Message-ID']}"
    async with hub.session.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 200 and resp.content_type == "application/fhir+json"
        assert await resp.read() == raw


async def test_acknowledge_delivers_once_and_removes_from_the_inbox(hub: RunningHub) -> None:
    _, message_id = await send_referral(hub)
    centre = hub.trust("RGT")
    first = await centre.acknowledge(message_id)
    second = await centre.acknowledge(message_id)
    assert first["state"] == second["state"] == "delivered"
    assert first["delivered_at"] == second["delivered_at"]
    assert await centre.inbox() == []
    conn = await asyncpg.connect(hub.dsn)
    try:
        rows = await conn.fetch("SELECT state, channel FROM deliveries")
        delivered_events = await conn.fetchval(
            "SELECT count(*) FROM audit_events WHERE event_type = 'message-delivered'"
        )
    finally:
        await conn.close()
    assert [(r["state"], r["channel"]) for r in rows] == [("delivered", "mailbox")]
    assert delivered_events == 1


async def test_a_trust_cannot_read_another_trusts_mailbox(hub: RunningHub) -> None:
    _, message_id = await send_referral(hub)
    rde = hub.trust("RDE")
    for method, path in [
        ("GET", "/mailbox/RGT/inbox"),
        ("GET", f"/mailbox/RGT/inbox/{message_id}"),
        ("POST", f"/mailbox/RGT/inbox/{message_id}/ack"),
    ]:
        auth = {"Authorization": f"Bearer {rde.bearer_token()}"}
        async with hub.session.request(method, hub.base_url + path, headers=auth) as resp:
            assert resp.status == 403, path
            assert "forbidden" in error_codes(await resp.json(content_type=None))
    auth = {"Authorization": f"Bearer {rde.bearer_token()}"}
    async with hub.session.get(f"{hub.base_url}/mailbox/RDE/inbox/{message_id}", headers=auth) as resp:
        assert resp.status == 404, "a message addressed elsewhere does not exist in RDE's mailbox"
    assert [item["id"] for item in await hub.trust("RGT").inbox()] == [message_id]


async def test_mailbox_needs_authentication(hub: RunningHub) -> None:
    async with hub.session.get(f"{hub.base_url}/mailbox/RGT/inbox") as resp:
        assert resp.status == 401 and "unauthenticated" in error_codes(await resp.json(content_type=None))


async def test_unknown_or_malformed_message_ids_are_404(hub: RunningHub) -> None:
    centre = hub.trust("RGT")
    for message_id in (str(uuid.uuid4()), "not-a-uuid", "..%2F..%2Fetc"):
        auth = {"Authorization": f"Bearer {centre.bearer_token()}"}
        async with hub.session.get(f"{hub.base_url}/mailbox/RGT/inbox/{message_id}", headers=auth) as resp:
            assert resp.status == 404
            assert "not-found" in error_codes(await resp.json(content_type=None))
        auth = {"Authorization": f"Bearer {centre.bearer_token()}"}
        async with hub.session.post(f"{hub.base_url}/mailbox/RGT/inbox/{message_id}/ack", headers=auth) as resp:
            assert resp.status == 404


async def test_inbox_lists_oldest_first_and_only_pending(hub: RunningHub) -> None:
    ids = [(await send_referral(hub, sender))[1] for sender in ("RM1", "RDE", "RGN")]
    centre = hub.trust("RGT")
    assert [item["id"] for item in await centre.inbox()] == ids
    await centre.acknowledge(ids[1])
    assert [item["id"] for item in await centre.inbox()] == [ids[0], ids[2]]
