"""A pathway's messages sent to a running hub over HTTP by the trusts, and its episode read back as governance: the
steps the episode tests share."""

from __future__ import annotations

from typing import Any

from adapters.pathway import Pathway
from tests.support.hub import RunningHub


async def send(hub: RunningHub, ods: str, bundle: dict[str, Any]) -> Any:
    """`bundle` signed and sent by the trust `ods`; the hub's answer."""
    client = hub.trust(ods)
    return await client.send(client.sign(bundle))


async def send_whole_pathway(hub: RunningHub, story: Pathway) -> None:
    """Referral, acceptance, transfer to the centre, the centre's answers and the discharge summary, each accepted."""
    for sender, build in (
        ("RM1", story.referral),
        ("RGT", lambda: story.outcome("accepted")),
        ("RM1", story.transfer_to_centre),
        ("RGT", story.centre_answers),
        ("RGT", story.discharge_summary),
    ):
        assert (await send(hub, sender, build())).accepted


async def episode_of(hub: RunningHub, story: Pathway) -> dict[str, Any]:
    """The episode of `story`'s patient (there is one), in full."""
    headers = {"Authorization": f"Bearer {hub.staff_token('governance')}"}
    url = f"{hub.base_url}/episodes?nhs-number={story.patient.nhs_number}"
    async with hub.session.get(url, headers=headers) as resp:
        [summary] = (await resp.json())["episodes"]
    async with hub.session.get(f"{hub.base_url}/episodes/{summary['id']}", headers=headers) as resp:
        assert resp.status == 200
        detail: dict[str, Any] = await resp.json()
        return detail
