"""Episodes over HTTP: built from the messages that pass, visible to governance and to the trusts involved,
with the safety net's deadlines on a controllable clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from adapters import builders
from tests.support.hub import EVENT_SYSTEM, Network, RunningHub, running_hub
from tests.support.messages import NAMES, error_codes, referral


class Clock:
    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


async def get(hub: RunningHub, path: str, token: str) -> tuple[int, Any]:
    async with hub.session.get(hub.base_url + path, headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, await resp.json(content_type=None)


async def send_referral(hub: RunningHub, sender: str = "RM1") -> dict[str, Any]:
    client = hub.trust(sender)
    signed = client.sign(referral(sender))
    result = await client.send(signed)
    assert result.accepted, result.body
    return signed


async def test_a_referral_opens_an_episode_with_the_referrer_responsible(hub: RunningHub) -> None:
    sent = await send_referral(hub)
    nhs = sent["entry"][2]["resource"]["identifier"][0]["value"]
    status, body = await get(hub, f"/episodes?nhs-number={nhs}", hub.staff_token("governance"))
    assert status == 200
    [episode] = body["episodes"]
    assert episode["state"] == "referred"
    assert episode["referrer"] == "RM1"
    assert episode["centre"] == "RGT"
    assert episode["responsible"]["ods"] == "RM1"
    assert episode["responsible"]["clinician"] == "Sam Referrer"
    status, detail = await get(hub, f"/episodes/{episode['id']}", hub.staff_token("governance"))
    assert status == 200
    assert [t["kind"] for t in detail["timeline"]] == ["referral"]
    assert [h["ods"] for h in detail["responsibility_history"]] == ["RM1"]
    assert {d["kind"] for d in detail["deadlines"]} == {"acknowledgement", "smdt-outcome"}


async def test_nhs_numbers_are_stored_only_as_pseudonyms(hub: RunningHub) -> None:
    sent = await send_referral(hub)
    nhs = sent["entry"][2]["resource"]["identifier"][0]["value"]
    conn = await asyncpg.connect(hub.dsn)
    try:
        rows = await conn.fetch("SELECT nhs_number_hmac, snapshot::text AS s FROM episodes")
    finally:
        await conn.close()
    assert rows
    assert all(nhs not in r["nhs_number_hmac"] and nhs not in r["s"] for r in rows)


async def test_trusts_see_only_their_episodes_and_ops_none(hub: RunningHub) -> None:
    await send_referral(hub, "RM1")
    await send_referral(hub, "RDE")
    status, body = await get(hub, "/episodes", hub.trust("RDE").bearer_token())
    assert status == 200
    assert {e["referrer"] for e in body["episodes"]} == {"RDE"}
    status, body = await get(hub, "/episodes", hub.trust("RGT").bearer_token())
    assert len(body["episodes"]) == 2
    status, body = await get(hub, "/episodes?trust=RM1", hub.trust("RDE").bearer_token())
    assert status == 403
    status, body = await get(hub, "/episodes", hub.staff_token("ops"))
    assert status == 403
    assert "forbidden" in error_codes(body)
    rm1_episode = (await get(hub, "/episodes?trust=RM1", hub.staff_token("governance")))[1]["episodes"][0]["id"]
    assert (await get(hub, f"/episodes/{rm1_episode}", hub.trust("RDE").bearer_token()))[0] == 404


async def test_bad_filters_are_400(hub: RunningHub) -> None:
    status, body = await get(hub, "/episodes?nhs-number=1234567890", hub.staff_token("governance"))
    assert status == 400
    assert "bad-header" in error_codes(body)


async def test_deadlines_fall_overdue_and_an_acknowledgement_meets_its_own(network: Network, database: str) -> None:
    clock = Clock()
    async with running_hub(network, database, clock=clock) as hub:
        sent = await send_referral(hub)
        governance = hub.staff_token("governance")
        assert (await get(hub, "/episodes?overdue=true", governance))[1]["episodes"] == []

        clock.offset = timedelta(hours=5)
        [episode] = (await get(hub, "/episodes?overdue=true", governance))[1]["episodes"]
        assert [d["kind"] for d in episode["overdue"]] == ["acknowledgement"]
        assert episode["overdue"][0]["owed_by"] == "RGT"
        assert episode["overdue"][0]["waiting"] == "RM1"

        centre = hub.trust("RGT")
        ack = centre.sign(builders.acknowledgement(EVENT_SYSTEM, "RGT", NAMES["RGT"], sent))
        assert (await centre.send(ack)).accepted
        assert (await get(hub, "/episodes?overdue=true", governance))[1]["episodes"] == []
        detail = (await get(hub, f"/episodes/{episode['id']}", governance))[1]
        assert detail["timeline"][0]["acknowledged_at"] is not None
        assert [t["kind"] for t in detail["timeline"]] == ["referral", "acknowledgement"]

        clock.offset = timedelta(days=15)
        [late] = (await get(hub, "/episodes?overdue=true", governance))[1]["episodes"]
        assert [d["kind"] for d in late["overdue"]] == ["smdt-outcome"]
        summary = (await get(hub, "/governance/summary", governance))[1]
        assert summary["overdue_total"] >= 1
        async with hub.session.get(f"{hub.base_url}/metrics") as resp:
            metrics = await resp.text()
        assert 'handover_deadlines_overdue{kind="smdt-outcome"} 1.0' in metrics
        assert 'handover_deadlines_overdue{kind="acknowledgement"} 0.0' in metrics


async def test_governance_summary_counts_referrals_per_trust(hub: RunningHub) -> None:
    for sender in ("RM1", "RM1", "RDE"):
        await send_referral(hub, sender)
    status, summary = await get(hub, "/governance/summary", hub.staff_token("governance"))
    assert status == 200
    year = datetime.now(UTC).year
    by_trust = {row["trust"]: row for row in summary["trusts"] if row["year"] == year}
    assert by_trust["RM1"]["referrals"] == 2
    assert by_trust["RDE"]["referrals"] == 1
    [network_row] = [row for row in summary["network"] if row["year"] == year]
    assert network_row["iog_resections_target"] == 200
    assert network_row["meets_iog_target"] is False
    assert (await get(hub, "/governance/summary", hub.trust("RM1").bearer_token()))[0] == 401


async def test_the_safety_net_alerts_the_waiting_party_once(network: Network, database: str) -> None:
    from service.app import SAFETY_NET
    from service.identity.signing import verify_bundle_signature

    clock = Clock()
    async with running_hub(network, database, clock=clock) as hub:
        sent = await send_referral(hub)
        safety_net = hub.app[SAFETY_NET]
        assert await safety_net.sweep() == 0, "nothing is overdue yet"
        clock.offset = timedelta(hours=5)
        assert await safety_net.sweep() == 1
        assert await safety_net.sweep() == 0, "each overdue answer is alerted once"

        referrer = hub.trust("RM1")
        [item] = await referrer.inbox()
        assert item["sender"] == "hub"
        assert item["event"] == "acknowledgement"
        alert, signature = await referrer.fetch(item["id"])
        assert signature.owner_ods == "hub"
        assert verify_bundle_signature(alert, hub.network.registry.hub_key).owner_ods == "hub"
        response = alert["entry"][0]["resource"]["response"]
        assert response["identifier"] == sent["entry"][0]["resource"]["id"]
        assert response["code"] == "transient-error"
        issue = alert["entry"][1]["resource"]["issue"][0]
        assert issue["details"]["coding"][0]["code"] == "acknowledgement-overdue"
        assert sent["entry"][2]["resource"]["identifier"][0]["value"] not in json.dumps(alert)

        governance = hub.staff_token("governance")
        [episode] = (await get(hub, "/episodes?overdue=true", governance))[1]["episodes"]
        assert episode["overdue"][0]["alerted_at"] is not None
        detail = (await get(hub, f"/episodes/{episode['id']}", governance))[1]
        assert "alert:acknowledgement-overdue" in [t["kind"] for t in detail["timeline"]]

        clock.offset = timedelta(days=15)
        assert await safety_net.sweep() == 1  # now the SMDT outcome too
