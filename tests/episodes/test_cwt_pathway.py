"""Cancer Waiting Times through the hub (issue 24, CONTRACT section 9): the whole pathway built as the published
examples are (adapters/builders.py via Pathway) gives the signed `ipt-received-date` in the referral's receipt and,
after the discharge summary, the episode's `cancer_waiting_times` with the right allocation rule. Around it: the IPT
data set refused when incomplete (element named), a referral without a pathway start that is no CWT pathway, the
IPT date moved to the referral that completed the data set after `more-information-needed`, and a second,
different decision to treat date refused. Real hub, real HTTP, real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from adapters.cwt_items import PATHWAY_ID_URL
from service.app import SAFETY_NET
from service.delivery.safetynet import SafetyNet
from service.receipts import receipt_parameters
from service.store import cwt as cwt_store
from service.store import db
from tests.support.hub import Network, RunningHub, running_hub
from tests.support.messages import error_codes, pathway
from tests.support.pathway_http import episode_of, send, send_whole_pathway
from tests.ui.http_signin import sign_in


def london_today() -> Any:
    return datetime.now(UTC).astimezone(ZoneInfo("Europe/London")).date()


async def test_whole_pathway_gives_the_signed_ipt_date_and_the_allocation(hub: RunningHub) -> None:
    today = london_today()
    story = pathway(2401, start=today - timedelta(days=45))  # reaches the centre on day 45: after day 38
    story.decision_to_treat = today - timedelta(days=1)
    story.faster_diagnosis = today - timedelta(days=30)
    referral = await send(hub, "RM1", story.referral())
    assert referral.accepted, referral.body
    assert receipt_parameters(referral.body)["ipt-received-date"] == today.isoformat()
    pending = (await episode_of(hub, story))["cancer_waiting_times"]
    assert pending["allocation_rule"] == "pending" and pending["allocation"] == {}
    assert pending["d38"] == 45 and pending["transferred_by_day_38"] is False and pending["met_62_days"] is None

    accepted = await send(hub, "RGT", story.outcome("accepted"))
    assert accepted.accepted, accepted.body
    story.decision_to_treat = today - timedelta(days=3)
    again = story.outcome("accepted")  # the SMDT outcome sent again with another decision to treat date
    refused = await send(hub, "RGT", again)
    assert refused.status == 422 and error_codes(refused.body)[0] == "invalid-transition"
    assert "decision to treat date" in refused.body["issue"][0]["diagnostics"]
    for sender, build in (
        ("RM1", story.transfer_to_centre),
        ("RGT", story.centre_answers),
        ("RGT", story.discharge_summary),  # treated today: day 45 of 62, 0 of the centre's 24
    ):
        result = await send(hub, sender, build())
        assert result.accepted, result.body
        assert "ipt-received-date" not in receipt_parameters(result.body)
    episode = await episode_of(hub, story)
    assert episode["cancer_waiting_times"] == {
        "clock_start": (today - timedelta(days=45)).isoformat(),
        "ipt_received_date": today.isoformat(),
        "decision_to_treat_date": (today - timedelta(days=1)).isoformat(),
        "treatment_date": today.isoformat(),
        "adjustment_days_referring": 0,
        "adjustment_days_treating": 0,
        "d38": 45,
        "d24": 0,
        "d62": 45,
        "transferred_by_day_38": False,
        "treated_within_24_days": True,
        "met_62_days": True,
        "met_31_days": True,
        "allocation_rule": "treating",
        "allocation": {"RGT": 1.0},
    }
    assert episode["pathway"]["day_38_breached"] is True and episode["pathway"]["day_62_breached"] is False
    assert episode["pathway"]["treated_on"] == today.isoformat()


async def test_incomplete_ipt_data_set_is_refused_naming_the_element(hub: RunningHub) -> None:
    story = pathway(2402, start=london_today() - timedelta(days=10))
    referral = story.referral()
    request = referral["entry"][1]["resource"]
    request["extension"] = [e for e in request["extension"] if e["url"] != PATHWAY_ID_URL]
    refused = await send(hub, "RM1", referral)
    assert refused.status == 422 and error_codes(refused.body)[0] == "profile-violation"  # nothing stored
    assert "ServiceRequest.extension:patientPathwayIdentifier" in refused.body["issue"][0]["diagnostics"]


async def test_a_referral_without_a_pathway_start_is_no_cwt_pathway(hub: RunningHub) -> None:
    story = pathway(2403)
    result = await send(hub, "RM1", story.referral())
    assert result.accepted
    assert "ipt-received-date" not in receipt_parameters(result.body)
    assert (await episode_of(hub, story))["cancer_waiting_times"] is None


async def test_more_information_needed_dates_the_ipt_at_the_completing_referral(hub: RunningHub, database: str) -> None:
    story = pathway(2404, start=london_today() - timedelta(days=20))
    first = await send(hub, "RM1", story.referral())
    assert "ipt-received-date" in receipt_parameters(first.body)
    assert (await send(hub, "RGT", story.outcome("more-information-needed"))).accepted
    episode = await episode_of(hub, story)
    assert episode["cancer_waiting_times"]["ipt_received_date"] is None
    completing = await send(hub, "RM1", story.referral_again())
    assert completing.accepted
    parameters = receipt_parameters(completing.body)
    assert parameters["ipt-received-date"] == london_today().isoformat()
    pool = await db.create_pool(database, max_size=2)
    try:
        async with db.connection(pool) as conn:
            dates = await cwt_store.read_cwt_dates(conn, UUID(episode["id"]))
    finally:
        await pool.close()
    assert str(dates.ipt_received_message_id) == parameters["message-id"]


async def test_the_episode_page_draws_the_phases_and_says_the_allocation(network: Network, database: str) -> None:
    today = london_today()
    async with running_hub(network, database, dev_idp=True, safety_net_seconds=3600) as hub:
        story = pathway(2405, start=today - timedelta(days=70))  # day 70 at the transfer, treated the same day
        await send_whole_pathway(hub, story)
        episode = await episode_of(hub, story)
        assert episode["cancer_waiting_times"]["allocation_rule"] == "referring"
        # The clock alerts agree: day 38 breached (IPT on day 70), and day 62 (treated on day 70, though the
        # transfer of care was accepted before the discharge summary came), to both trusts once each.
        safety_net: SafetyNet = hub.app[SAFETY_NET]
        assert await safety_net.sweep_clocks() == 4
        assert await safety_net.sweep_clocks() == 0
        user = await sign_in(hub.base_url, "amara.okafor")  # governance
        try:
            async with user.client.get(f"{hub.base_url}/ui/episodes/{episode['id']}") as resp:
                assert resp.status == 200
                text = await resp.text()
        finally:
            await user.client.close()
    assert 'id="cwt-picture"' in text and "70 of 62 days" in text and "0 of 24 days" in text
    assert "Breach allocated to the referring trust" in text and "on day 70, after day 38" in text
