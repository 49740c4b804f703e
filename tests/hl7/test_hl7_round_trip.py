"""EPR → hub → centre EPR: the centre's connector pulls from its mailbox and hands the EPR a REF^I12, and
acknowledges at the hub only after the EPR's AA; the centre's business acknowledgement reaches the referring
EPR as an ACK of its own MSH-10."""

from __future__ import annotations

import hl7

from adapters import builders
from adapters.hl7.queue import key_of
from tests.hl7 import samples
from tests.hl7.conftest import StartConnector
from tests.hl7.mllp import EprListener, ack_code, send, until
from tests.support.hub import EVENT_SYSTEM, RunningHub
from tests.support.messages import NAMES


async def test_a_referral_reaches_the_centres_epr_and_the_centres_acknowledgement_the_referrers(
    hub: RunningHub, start_connector: StartConnector, epr_listener: EprListener
) -> None:
    centre_epr = await EprListener().start()
    try:
        nhs = samples.nhs_number()
        message = samples.referral(nhs)
        async with (
            start_connector("RM1", epr=epr_listener) as (rm1, rm1_port),
            start_connector("RGT", epr=centre_epr) as (rgt, _rgt_port),
        ):
            assert ack_code(await send(rm1_port, message)) == "AA"
            ref = await centre_epr.next_of("REF^I12")
            assert str(ref.extract_field("PID", 1, 3, 1, 1)) == nhs
            assert str(ref.extract_field("MSH", 1, 3, 1, 2)) == "RM1"  # MSH-3: HANDOVER^<sender ODS>

            async def centre_inbox_empty() -> bool:
                return await hub.trust("RGT").inbox() == []

            await until(centre_inbox_empty)  # acknowledged at the hub once the EPR said AA
            received = rgt.queue.root  # the centre's connector kept nothing it did not need
            assert not list((received / "pending").glob("*.json"))

            # the centre (here through its FHIR client) acknowledges the referral, as the connector signed it
            [done] = [rm1.queue.done(key_of("RM1", str(hl7.parse(message).extract_field("MSH", 1, 10, 1, 1))))]
            assert done is not None
            referral = done.signed
            centre = hub.trust("RGT")
            acknowledgement = builders.acknowledgement(EVENT_SYSTEM, "RGT", NAMES["RGT"], referral)
            assert (await centre.send(centre.sign(acknowledgement))).accepted
            ack = await epr_listener.next_of("ACK^I12")
            assert str(ack.extract_field("MSA", 1, 2, 1, 1)) == str(
                hl7.parse(message).extract_field("MSH", 1, 10, 1, 1)
            )
    finally:
        await centre_epr.stop()
