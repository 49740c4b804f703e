"""`GET /governance/cwt?from=&to=` over real HTTP on real episodes (hazards HAZ-23, HAZ-22):
governance staff only; pathways counted by treatment date in the period; each breach allocated and linked to its
episode; a bad period is a 400 OperationOutcome, not a 5xx."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from service.store import db
from service.store.cwt_reads import pathways_in_period, treated_pathways
from tests.support.cwt import START, day, episode_ids, set_cwt_dates
from tests.support.hub import RunningHub
from tests.support.messages import referral


async def get(hub: RunningHub, path: str, token: str) -> tuple[int, dict[str, Any]]:
    async with hub.session.get(f"{hub.base_url}{path}", headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, json.loads(await resp.read())


async def three_pathways(hub: RunningHub) -> list[Any]:
    for sender in ("RM1", "RM1", "RDE"):
        client = hub.trust(sender)
        result = await client.send(client.sign(referral(sender)))
        assert result.accepted, result.body
    late_transfer, in_time, untreated = await episode_ids(hub.dsn)
    await set_cwt_dates(hub.dsn, late_transfer, pathway_start=START, ipt_received_date=day(45), treatment_date=day(65))
    await set_cwt_dates(
        hub.dsn,
        in_time,
        pathway_start=START,
        ipt_received_date=day(20),
        treatment_date=day(40),
        adjustment_days_treating=3,
    )
    await set_cwt_dates(hub.dsn, untreated, pathway_start=START, ipt_received_date=day(30))
    return [late_transfer, in_time, untreated]


async def test_governance_sees_each_provider_and_each_breach_linked_to_its_episode(hub: RunningHub) -> None:
    late_transfer, _, _ = await three_pathways(hub)
    status, body = await get(hub, "/governance/cwt?from=2026-09-01&to=2026-12-31", hub.staff_token("governance"))
    assert status == 200, body
    assert body["pathways_treated"] == 2
    by = {p["provider"]: p for p in body["providers"]}
    assert set(by) == {"RM1", "RGT"}, "RDE's pathway is not treated yet"
    assert by["RM1"]["provider_name"] != "RM1", "organisations by name"
    assert (by["RM1"]["allocated_pathways"], by["RM1"]["allocated_breaches"]) == (1.5, 1.0)
    assert (by["RGT"]["allocated_pathways"], by["RGT"]["allocated_breaches"]) == (0.5, 0.0)
    assert (by["RM1"]["transfers"], by["RM1"]["transfers_by_day_38"], by["RM1"]["median_d38"]) == (2, 1, 32.5)
    assert by["RGT"]["median_d24"] == 18.5  # 20 and 20 - 3 days' adjustment
    [breach] = body["breaches"]
    assert breach["episode"] == f"/episodes/{late_transfer}"
    assert (breach["allocation_rule"], breach["allocation"], breach["d62"]) == ("referring", {"RM1": 1.0}, 65)


async def test_the_period_selects_pathways_by_treatment_date(hub: RunningHub) -> None:
    await three_pathways(hub)
    status, body = await get(hub, "/governance/cwt?from=2026-10-10&to=2026-10-11", hub.staff_token("governance"))
    assert status == 200
    assert body["pathways_treated"] == 1  # day 40 = 11 October
    assert body["breaches"] == []
    conn = await db.connect(hub.dsn)
    try:
        assert len(await treated_pathways(conn, START, START + timedelta(days=100))) == 2
        assert len(await pathways_in_period(conn, START, START)) == 3, "every clock started on START"
    finally:
        await conn.close()


async def test_only_governance_staff_may_read_the_report(hub: RunningHub) -> None:
    for token in (hub.staff_token("ops"), hub.trust("RM1").bearer_token()):
        status, body = await get(hub, "/governance/cwt", token)
        assert status in (401, 403), body
        assert body["resourceType"] == "OperationOutcome"


async def test_a_bad_period_is_a_400_operation_outcome(hub: RunningHub) -> None:
    token = hub.staff_token("governance")
    for query in ("from=2026-13-01", "to=yesterday", "from=2026-12-01&to=2026-11-01"):
        status, body = await get(hub, f"/governance/cwt?{query}", token)
        assert status == 400, query
        assert body["issue"][0]["details"]["coding"][0]["code"] == "bad-header"
