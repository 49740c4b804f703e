"""The demo's pathway completed by a trust whose EPR speaks only HL7 v2 (RM1), with the centre (RGT): every
message signed at one end and verified at the other, the episode closed, and the audit log witnessed consistent
from before the first message to after the last."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from adapters import builders
from adapters.hl7.inbound import referral_identifier
from adapters.witness import Witness
from tests.hl7 import samples
from tests.hl7.conftest import StartConnector
from tests.hl7.mllp import EprListener, ack_code, send, until
from tests.support.hub import EVENT_SYSTEM, RunningHub
from tests.support.messages import NAMES

SURGEON = builders.Clinician("Fenwright", "Morgan", "7100001")
LOCAL = builders.Clinician("Referrer", "Sam", "7000001")


async def centre_receives(hub: RunningHub, event: str) -> dict[str, Any]:
    """The next `event` message in the centre's mailbox, its sender's signature verified, then acknowledged."""
    centre = hub.trust("RGT")
    async with asyncio.timeout(30):
        while True:
            for item in await centre.inbox():
                if item["event"] == event:
                    bundle, signature = await centre.fetch(item["id"])
                    assert signature.owner_ods == bundle["entry"][0]["resource"]["sender"]["identifier"]["value"]
                    await centre.acknowledge(item["id"])
                    return bundle
            await asyncio.sleep(0.1)


async def centre_sends(hub: RunningHub, bundle: dict[str, Any]) -> None:
    centre = hub.trust("RGT")
    result = await centre.send(centre.sign(bundle))  # the receipt's hub signature and digest are checked
    assert result.accepted, result.body


def focus_of(bundle: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind)


async def episode_state(hub: RunningHub, nhs_number: str) -> str:
    headers = {"Authorization": f"Bearer {hub.staff_token('governance')}"}
    async with hub.session.get(f"{hub.base_url}/episodes?nhs-number={nhs_number}", headers=headers) as resp:
        [episode] = (await resp.json())["episodes"]
        return str(episode["state"])


async def test_an_hl7_only_trust_completes_the_pathway_with_the_centre(
    hub: RunningHub, start_connector: StartConnector, epr_listener: EprListener, tmp_path: Path
) -> None:
    witness = Witness(hub.session, hub.base_url, hub.network.registry, tmp_path / "witness")
    await _wait_for_checkpoint(witness)
    nhs, local_number = samples.nhs_number(), "REF-000123"
    referral_id = referral_identifier(local_number, "RM1")
    async with (
        start_connector("RM1", epr=epr_listener) as (_rm1, rm1_port),
        start_connector("RGT") as (_rgt, rgt_port),  # the centre's EPR sends its discharge as ADT^A03
    ):
        # 1. REF^I12 from RM1's EPR → referral; the centre answers with an SMDT outcome → RRI^I12 at RM1's EPR
        assert ack_code(await send(rm1_port, samples.referral(nhs, local=local_number))) == "AA"
        referral = await centre_receives(hub, "referral")
        assert focus_of(referral, "ServiceRequest")["identifier"][0]["value"] == referral_id
        outcome = builders.referral_outcome(
            EVENT_SYSTEM, "RGT", NAMES["RGT"], referral, decision="accepted", plan="Listed.", decided_by=SURGEON
        )
        await centre_sends(hub, outcome)
        rri = await epr_listener.next_of("RRI^I12")
        assert (str(rri.extract_field("RF1", 1, 1, 1, 1)), str(rri.extract_field("RF1", 1, 6, 1, 1))) == (
            "A",
            referral_id,
        )
        assert str(rri.extract_field("PID", 1, 3, 1, 1)) == nhs

        async def has_entries() -> bool:
            return (await witness.observe()).tree_size > 0

        await until(has_entries)  # a checkpoint with entries, so the last one below needs a real consistency proof

        # 2. transfer of care to the centre: REF^I12 with RF1-3 TOC; the centre accepts → RRI^I12 (TOC, A)
        assert ack_code(await send(rm1_port, samples.transfer(nhs, local_number))) == "AA"
        transfer = await centre_receives(hub, "transfer-of-care")
        await centre_sends(
            hub, builders.transfer_of_care_response(EVENT_SYSTEM, "RGT", NAMES["RGT"], transfer, accepted=True)
        )
        answer = await epr_listener.next_of("RRI^I12")
        assert str(answer.extract_field("RF1", 1, 3, 1, 1)) == "TOC"

        # 3. the centre's EPR discharges the patient: ADT^A03 with OBX text → discharge summary → ADT^A03 at RM1
        assert ack_code(await send(rgt_port, samples.discharge(nhs, referral_id))) == "AA"
        discharge = await epr_listener.next_of("ADT^A03")
        assert "Right hemihepatectomy" in str(discharge)

        # 4. transfer back to the named local clinician: REF^I12 (TOC) at RM1; its EPR accepts with RRI^I12
        back = builders.transfer_of_care(
            EVENT_SYSTEM,
            sender_ods="RGT",
            sender_name=NAMES["RGT"],
            receiver_ods="RM1",
            receiver_name=NAMES["RM1"],
            patient=builders.SyntheticPatient(nhs, "Testpatient", "Alex", "1958-03-14", "female"),
            from_clinician=SURGEON,
            to_clinician=LOCAL,
            referral_identifier=referral_id,
        )
        await centre_sends(hub, back)
        ref = await epr_listener.next_of("REF^I12")
        task_identifier = str(ref.extract_field("RF1", 1, 6, 1, 1))
        assert task_identifier == focus_of(back, "Task")["identifier"][0]["value"]
        assert ack_code(await send(rm1_port, samples.transfer_answer(nhs, task_identifier))) == "AA"
        response = await centre_receives(hub, "transfer-of-care-response")
        assert focus_of(response, "Task")["status"] == "accepted"

        assert await hub.trust("RM1").inbox() == []  # everything RM1 received reached its EPR and was acknowledged
    assert await episode_state(hub, nhs) == "closed"
    before = witness.latest()
    assert before is not None

    async def grew() -> bool:
        assert before is not None
        return (await witness.observe()).tree_size > before.tree_size

    await until(grew)  # the pathway's messages were audited; each newer checkpoint proved to extend the last


async def _wait_for_checkpoint(witness: Witness) -> None:
    async with asyncio.timeout(30):
        while True:
            try:
                await witness.observe()
                return
            except Exception:  # noqa: BLE001 - 404 until the hub's first checkpoint is signed
                await asyncio.sleep(0.2)
