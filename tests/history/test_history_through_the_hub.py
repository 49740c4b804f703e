"""The demo's year of history played through a real hub on the DemoClock (adapters/history.py): the episodes it
leaves are the ones planned, dated as of the history, and the clock cannot be moved outside development mode."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters import builders
from adapters.history import play_history
from adapters.history_plan import plan_year
from adapters.pathway import Pathway
from service.app import build_app
from service.devclock import HEADER, DemoClock, DemoClockNotAllowed
from service.signing import sign_bundle
from tests.support.hub import EVENT_SYSTEM, Network, RunningHub, running_hub, settings_for

PATHWAYS = 20


async def _json(hub: RunningHub, path: str) -> Any:
    headers = {"Authorization": f"Bearer {hub.staff_token('governance')}"}
    async with hub.session.get(f"{hub.base_url}{path}", headers=headers) as resp:
        assert resp.status == 200, (path, resp.status)
        return await resp.json()


async def test_a_small_history_leaves_the_planned_episodes_dated_as_of_the_history(
    network: Network, database: str
) -> None:
    clock = DemoClock()
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    registry = network.registry
    plans = plan_year([p.ods for p in registry.referrers()], registry.centre().ods, PATHWAYS, end=end)
    async with running_hub(network, database, clock=clock, dev_idp=True) as hub:
        report = await play_history(
            hub.base_url, registry, network.keys_dir, EVENT_SYSTEM, clock, pathways=PATHWAYS, end=end
        )
        assert report.ok, report.refused
        assert report.pathways == PATHWAYS
        assert abs((clock() - datetime.now(UTC)).total_seconds()) < 60, "back on real time afterwards"

        rules: Counter[str | None] = Counter()
        kinds: Counter[str] = Counter()
        for plan in plans:
            found = (await _json(hub, f"/episodes?nhs-number={plan.patient.nhs_number}"))["episodes"]
            assert len(found) == 1, plan.number
            episode = await _json(hub, f"/episodes/{found[0]['id']}")
            first = episode["timeline"][0]
            assert datetime.fromisoformat(first["at"]) == plan.beats[0].at, "accepted as of the history's moment"
            cwt = episode["cancer_waiting_times"]
            rule = None if cwt is None else cwt["allocation_rule"]
            assert rule == plan.expected_rule, (plan.number, cwt)
            rules[rule] += 1
            kinds.update(entry["kind"] for entry in episode["timeline"])
        assert {"pending", "shared", "treating", "referring"} <= set(rules)
        assert kinds["alert:acknowledgement-overdue"] >= 1, "late acknowledgements were alerted by the safety net"
        assert kinds["alert:day-38-breached"] >= 1

        async with hub.session.get(f"{hub.base_url}/metrics") as resp:
            metrics = await resp.text()
        dead = [line for line in metrics.splitlines() if line.startswith("handover_relay_dead_letters_total{")]
        assert sum(float(line.split()[-1]) for line in dead) == 1, dead

        again = await play_history(hub.base_url, registry, network.keys_dir, EVENT_SYSTEM, clock, pathways=PATHWAYS)
        assert again.already and again.ok and again.messages == 0, "a second demo on the same database adds nothing"
        found = (await _json(hub, f"/episodes?nhs-number={plans[0].patient.nhs_number}"))["episodes"]
        assert len(found) == 1


def test_the_demo_clock_is_refused_outside_development_mode(network: Network, database: str) -> None:
    settings = settings_for(network, database, 8080)
    assert not settings.dev_idp
    with pytest.raises(DemoClockNotAllowed):
        build_app(settings, database, clock=DemoClock())


def _referral_of(network: Network, sent_at: datetime) -> tuple[bytes, dict[str, str]]:
    """A referral from RM1 built and signed at `sent_at` (days back: stale unless the hub's clock is moved)."""
    patient = builders.SyntheticPatient(
        builders.synthetic_nhs_number(987_001), "Testcase", "Ada", "1950-01-01", "female"
    )
    story = Pathway(
        EVENT_SYSTEM, "RM1", "RM1", "RGT", "RGT", patient, builders.Clinician("Local", "Sam", "7000001"),
        builders.Clinician("Worker", "Jo", "7000002"), now=sent_at,
    )  # fmt: skip
    signed = sign_bundle(story.referral(), network.private_key("RM1"), "RM1", when=sent_at)
    return json.dumps(signed).encode(), {"X-Request-ID": str(uuid.uuid4())}


@pytest.mark.parametrize("dev", [False, True], ids=["ordinary-hub", "demo-hub-forged-ticket"])
async def test_no_request_can_move_the_hub_clock_without_a_ticket_its_process_issued(
    network: Network, database: str, dev: bool
) -> None:
    sent_at = datetime.now(UTC) - timedelta(days=10)
    body, headers = _referral_of(network, sent_at)
    clock = DemoClock()
    forged = {HEADER: DemoClock().ticket(sent_at)}  # a ticket from another clock: unknown to this hub
    async with running_hub(network, database, **({"clock": clock, "dev_idp": True} if dev else {})) as hub:
        status, outcome, _ = await hub.post_raw(body, headers={**headers, **forged})
        assert status == 422, outcome
        assert outcome["issue"][0]["details"]["coding"][0]["code"] == "stale-message"
        if dev:  # the same message with a ticket the hub's own clock issued is accepted as of its moment
            ticket = {HEADER: clock.ticket(sent_at)}
            status, receipt, _ = await hub.post_raw(body, headers={**headers, **ticket})
            assert status == 202, receipt
            assert receipt["timestamp"].startswith(sent_at.strftime("%Y-%m-%dT%H:%M")), "dated as of the ticket"
            status, outcome, _ = await hub.post_raw(body, headers={"X-Request-ID": str(uuid.uuid4()), **ticket})
            assert status == 422, "a ticket is used once: the same one again does not move the clock"
            assert outcome["issue"][0]["details"]["coding"][0]["code"] == "stale-message"
