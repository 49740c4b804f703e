"""Cancer clocks breached unnoticed (hazard log HAZ-16): the safety net alerts the referring trust and the centre
once each when the day-38 target was breached, when the day-62 target is within HANDOVER_CLOCK_WARNING_DAYS
with treatment not started, and when it is breached; a treated patient's clock raises nothing. Real hub, real
HTTP, real PostgreSQL, on a clock the test moves."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.pathway import Pathway
from service.app import SAFETY_NET
from service.config import Settings
from service.delivery.safetynet import SafetyNet
from service.identity.signing import verify_bundle_signature
from tests.support.hub import Network, RunningHub, running_hub
from tests.support.messages import pathway


class MovableClock:
    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


async def send(hub: RunningHub, ods: str, bundle: dict[str, Any]) -> None:
    client = hub.trust(ods)
    result = await client.send(client.sign(bundle))
    assert result.accepted, result.body


async def clock_alerts(hub: RunningHub, ods: str) -> list[tuple[str, str]]:
    """(alert code, the message it is about) of every hub alert in `ods`'s mailbox, checked to be hub-signed."""
    client = hub.trust(ods)
    found = []
    for item in await client.inbox():
        if item["sender"] != "hub":
            continue
        alert, signature = await client.fetch(item["id"])
        assert signature.owner_ods == "hub"
        assert verify_bundle_signature(alert, hub.network.registry.hub_key).owner_ods == "hub"
        code = alert["entry"][1]["resource"]["issue"][0]["details"]["coding"][0]["code"]
        found.append((code, alert["entry"][0]["resource"]["response"]["identifier"]))
    return sorted(found)


async def test_cancer_clocks_breaches_and_an_approaching_day_62_are_alerted_once_each(
    network: Network, database: str
) -> None:
    clock = MovableClock()
    today = clock().date()
    async with running_hub(network, database, clock=clock, safety_net_seconds=3600) as hub:
        safety_net: SafetyNet = hub.app[SAFETY_NET]
        late = pathway(621, start=today - timedelta(days=50))  # reaches the centre on day 50: day 38 already breached
        await send(hub, "RM1", late.referral())
        treated = pathway(622, start=today - timedelta(days=10))
        for ods, build in (
            ("RM1", treated.referral),
            ("RGT", lambda: treated.outcome("accepted")),
            ("RM1", treated.transfer_to_centre),
            ("RGT", treated.centre_answers),  # treatment starts: the day-62 clock stops
        ):
            await send(hub, ods, build())
        late_referral = late.sent["referral"]["entry"][0]["resource"]["id"]

        racing = await asyncio.gather(*(safety_net.sweep_clocks() for _ in range(3)))  # as three hub processes
        assert sum(racing) == 2, "day 38 breached: the referrer and the centre, once each however many sweep"
        assert await safety_net.sweep_clocks() == 0, "once each"
        clock.offset = timedelta(days=4)  # day 54: target day 62 is 8 days away, outside the 7-day warning
        assert await safety_net.sweep_clocks() == 0
        clock.offset = timedelta(days=5)  # day 55: 7 days to go
        assert await safety_net.sweep_clocks() == 2
        assert await safety_net.sweep_clocks() == 0
        clock.offset = timedelta(days=13)  # day 63: breached; the treated patient (day 23 + 13) raises nothing
        assert await safety_net.sweep_clocks() == 2
        clock.offset = timedelta(days=80)
        assert await safety_net.sweep_clocks() == 0

        expected = [
            ("day-38-breached", late_referral),
            ("day-62-approaching", late_referral),
            ("day-62-breached", late_referral),
        ]
        for ods in ("RM1", "RGT"):
            assert await clock_alerts(hub, ods) == expected, ods
        detail = await episode_detail(hub, late)
        kinds = [t["kind"] for t in detail["timeline"]]
        assert kinds.count("alert:day-62-breached") == 2
        assert detail["pathway"]["day_62_breached"] is True
        assert late.patient.nhs_number not in json.dumps(await clock_alerts(hub, "RM1"))


async def episode_detail(hub: RunningHub, pathway: Pathway) -> dict[str, Any]:
    token = {"Authorization": f"Bearer {hub.staff_token('governance')}"}
    url = f"{hub.base_url}/episodes?nhs-number={pathway.patient.nhs_number}"
    async with hub.session.get(url, headers=token) as resp:
        [summary] = (await resp.json())["episodes"]
    async with hub.session.get(f"{hub.base_url}/episodes/{summary['id']}", headers=token) as resp:
        detail: dict[str, Any] = await resp.json()
    return detail


async def test_cancer_clocks_warning_period_is_a_setting(network: Network, database: str) -> None:
    assert Settings.from_env({}).clock_warning_days == 7
    assert Settings.from_env({"HANDOVER_CLOCK_WARNING_DAYS": "3"}).clock_warning_days == 3
    clock = MovableClock()
    today = clock().date()
    async with running_hub(network, database, clock=clock, safety_net_seconds=3600, clock_warning_days=3) as hub:
        safety_net: SafetyNet = hub.app[SAFETY_NET]
        await send(hub, "RM1", pathway(623, start=today - timedelta(days=20)).referral())
        clock.offset = timedelta(days=38)  # day 58: 4 days to go
        assert await safety_net.sweep_clocks() == 0
        clock.offset = timedelta(days=39)  # day 59: 3 days to go
        assert await safety_net.sweep_clocks() == 2
        assert [code for code, _ in await clock_alerts(hub, "RGT")] == ["day-62-approaching"]


@pytest.mark.parametrize("state", ["withdrawn", "declined"])
async def test_cancer_clocks_closed_episodes_raise_nothing(network: Network, database: str, state: str) -> None:
    clock = MovableClock()
    today = clock().date()
    async with running_hub(network, database, clock=clock, safety_net_seconds=3600) as hub:
        safety_net: SafetyNet = hub.app[SAFETY_NET]
        closed = pathway(624, start=today - timedelta(days=70))
        await send(hub, "RM1", closed.referral())
        if state == "declined":
            await send(hub, "RGT", closed.outcome("declined"))
        else:
            withdrawal = closed.referral_again()
            request = next(
                e["resource"] for e in withdrawal["entry"] if e["resource"]["resourceType"] == "ServiceRequest"
            )
            request["status"] = "revoked"
            await send(hub, "RM1", withdrawal)
        assert await safety_net.sweep_clocks() == 0
