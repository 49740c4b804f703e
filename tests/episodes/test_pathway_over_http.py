"""The whole pathway through the hub: responsibility checked after every message, refusals that name the
episode's state, and the cancer pathway clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adapters import builders
from tests.support.hub import RunningHub
from tests.support.messages import pathway
from tests.support.pathway_http import episode_of, send, send_whole_pathway

LOCAL = builders.Clinician("Referrer", "Sam", "7000001")


async def test_responsibility_follows_the_whole_pathway(hub: RunningHub) -> None:
    story = pathway(501)
    steps = [
        ("RM1", story.referral, "referred", ("RM1", "Sam Referrer")),
        ("RGT", lambda: story.outcome("accepted"), "accepted", ("RM1", "Sam Referrer")),
        ("RM1", story.transfer_to_centre, "transfer-requested", ("RM1", "Sam Referrer")),
        ("RGT", story.centre_answers, "at-centre", ("RGT", "Morgan Fenwright")),
        ("RGT", story.discharge_summary, "discharge-summary-sent", ("RGT", "Morgan Fenwright")),
        ("RGT", story.transfer_back, "transfer-back-requested", ("RGT", "Morgan Fenwright")),
        ("RM1", story.referrer_answers, "closed", ("RM1", "Sam Referrer")),
    ]
    for sender, build, state, (ods, clinician) in steps:
        result = await send(hub, sender, build())
        assert result.accepted, (state, result.body)
        episode = await episode_of(hub, story)
        assert episode["state"] == state
        assert (episode["responsible"]["ods"], episode["responsible"]["clinician"]) == (ods, clinician), state
    assert [h["ods"] for h in episode["responsibility_history"]] == ["RM1", "RGT", "RM1"]
    assert episode["responsibility_history"][1]["accepted_by"] == "Morgan Fenwright"
    assert len(episode["timeline"]) == 7


async def test_a_rejected_transfer_leaves_responsibility_with_the_referrer(hub: RunningHub) -> None:
    story = pathway(502)
    for sender, message in (
        ("RM1", story.referral()),
        ("RGT", story.outcome("accepted")),
        ("RM1", story.transfer_to_centre()),
        ("RGT", story.centre_answers(accepted=False)),
    ):
        assert (await send(hub, sender, message)).accepted
    episode = await episode_of(hub, story)
    assert episode["state"] == "accepted"
    assert episode["responsible"]["ods"] == "RM1"


async def test_a_message_out_of_turn_is_422_invalid_transition_naming_the_state(hub: RunningHub) -> None:
    story = pathway(503)
    assert (await send(hub, "RM1", story.referral())).accepted
    result = await send(hub, "RGT", story.discharge_summary())
    assert result.status == 422
    assert "invalid-transition" in result.error_codes
    assert "referred" in result.body["issue"][0]["details"]["text"]
    assert (await episode_of(hub, story))["state"] == "referred"


async def test_a_message_for_an_unknown_referral_is_refused(hub: RunningHub) -> None:
    story = pathway(504)
    story.referral()  # built, never sent
    result = await send(hub, "RGT", story.outcome("accepted"))
    assert result.status == 422
    assert "invalid-transition" in result.error_codes


async def test_declined_closes_and_more_information_reopens(hub: RunningHub) -> None:
    declined, more = pathway(505), pathway(506)
    assert (await send(hub, "RM1", declined.referral())).accepted
    assert (await send(hub, "RGT", declined.outcome("declined"))).accepted
    assert (await episode_of(hub, declined))["state"] == "declined-closed"
    assert (await send(hub, "RM1", more.referral())).accepted
    assert (await send(hub, "RGT", more.outcome("more-information-needed"))).accepted
    assert (await episode_of(hub, more))["state"] == "more-information-needed"
    again = more.sent["referral"] | {
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{builders.new_id()}"}
    }
    assert (await send(hub, "RM1", again)).accepted  # re-referred with more information
    assert (await episode_of(hub, more))["state"] == "referred"


async def test_pathway_clocks_flag_day_38_and_day_62_breaches(hub: RunningHub) -> None:
    late = pathway(507, start=(datetime.now(UTC) - timedelta(days=70)).date())
    assert (await send(hub, "RM1", late.referral())).accepted
    clock = (await episode_of(hub, late))["pathway"]
    assert clock["days_elapsed"] == 70
    assert clock["day_38_breached"] is True
    assert clock["day_62_breached"] is True
    early = pathway(508, start=(datetime.now(UTC) - timedelta(days=10)).date())
    assert (await send(hub, "RM1", early.referral())).accepted
    clock = (await episode_of(hub, early))["pathway"]
    assert (clock["days_elapsed"], clock["day_38_breached"], clock["day_62_breached"]) == (10, False, False)


async def test_resections_count_in_the_governance_summary(hub: RunningHub) -> None:
    story = pathway(509)
    await send_whole_pathway(hub, story)
    token = hub.staff_token("governance")
    async with hub.session.get(
        f"{hub.base_url}/governance/summary", headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        summary = await resp.json()
    [row] = [r for r in summary["trusts"] if r["trust"] == "RM1"]
    assert (row["referrals"], row["accepted"], row["resections"]) == (1, 1, 1)
    assert row["median_hours_transfer_acceptance"] is not None


async def test_breached_pathway_clocks_count_as_overdue_in_the_governance_summary(hub: RunningHub) -> None:
    """The governance "Overdue" figure said 0 for a trust whose worklist showed a day-38 breach and a missed day 62:
    it now counts what the worklist shows as overdue, with its parts beside it."""
    late = pathway(510, start=(datetime.now(UTC) - timedelta(days=70)).date())  # at the centre on day 70
    assert (await send(hub, "RM1", late.referral())).accepted
    early = pathway(511, start=(datetime.now(UTC) - timedelta(days=10)).date())
    assert (await send(hub, "RM1", early.referral())).accepted
    async with hub.session.get(
        f"{hub.base_url}/governance/summary", headers={"Authorization": f"Bearer {hub.staff_token('governance')}"}
    ) as resp:
        summary = await resp.json()
    [row] = [r for r in summary["trusts"] if r["trust"] == "RM1"]
    assert (row["day_38_breaches"], row["day_62_breaches"], row["overdue_answers"]) == (1, 1, 0)
    assert row["overdue"] == 2
    assert summary["overdue_total"] == 2
