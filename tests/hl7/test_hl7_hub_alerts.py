"""A hub-signed alert in the trust's mailbox (no MessageHeader.sender): no HL7 message maps it, so it stays in
the mailbox, is logged once without patient data and counted, and the mailbox loop goes on delivering what
follows it to the EPR (issue 26, item 1: the alert used to kill the loop for good, silently)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from adapters import builders
from adapters.hl7 import outbound
from service.episodes.alerts import build_clock_alert
from tests.hl7 import samples
from tests.hl7.conftest import StartConnector
from tests.hl7.mllp import EprListener, ack_code, send, until
from tests.support.hub import EVENT_SYSTEM, Network, RunningHub, running_hub
from tests.support.messages import NAMES


class Clock:
    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def hub(network: Network, database: str, clock: Clock) -> AsyncIterator[RunningHub]:
    """The real hub on a clock the test moves, so its safety net alerts on demand."""
    async with running_hub(network, database, clock=clock) as running:
        yield running


def test_a_hub_signed_alert_has_no_hl7_mapping(network: Network) -> None:
    about = "d2b0b7a4-52b5-4d47-9d6e-0d5a8f0f0c11"
    alert, _raw = build_clock_alert(
        event_system=EVENT_SYSTEM,
        code="day-62-approaching",
        recipient_ods="RGT",
        referral_header_id=about,
        target=datetime.now(UTC).date(),
        now=datetime.now(UTC),
        hub_private_jwk=network.private_key("hub"),
    )
    assert "sender" not in alert["entry"][0]["resource"]
    assert outbound.for_epr(alert, "RGT", {about: "MSG0001"}) is None


async def test_a_hub_alert_stays_in_the_mailbox_and_delivery_to_the_epr_goes_on(
    hub: RunningHub,
    clock: Clock,
    start_connector: StartConnector,
    epr_listener: EprListener,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from service.app import SAFETY_NET

    nhs = samples.nhs_number()
    caplog.set_level(logging.INFO, logger="handover.hl7")
    async with start_connector("RM1", epr=epr_listener) as (connector, port):
        assert ack_code(await send(port, samples.referral(nhs))) == "AA"
        clock.offset = timedelta(hours=5)  # the centre's business acknowledgement is now overdue
        assert await hub.app[SAFETY_NET].sweep() == 1  # a hub-signed alert (no sender) for RM1's mailbox
        [referral] = [entry.signed for entry in _done(connector)]
        outcome = builders.referral_outcome(
            EVENT_SYSTEM,
            "RGT",
            NAMES["RGT"],
            referral,
            decision="accepted",
            plan="Listed.",
            decided_by=builders.Clinician("Fenwright", "Morgan", "7100001"),
        )
        centre = hub.trust("RGT")
        assert (await centre.send(centre.sign(outcome))).accepted
        rri = await epr_listener.next_of("RRI^I12", within=20)  # the loop outlived the alert
        assert str(rri.extract_field("RF1", 1, 1, 1, 1)) == "A"

        async def only_the_alert_left() -> bool:  # the outcome acknowledged at the hub, the alert kept
            return [(m["sender"], m["event"]) for m in await hub.trust("RM1").inbox()] == [("hub", "acknowledgement")]

        await until(only_the_alert_left, within=20)
        assert connector.metrics.value("handover_hl7_mailbox_unmapped_total", event="acknowledgement") == 1
        assert not any(task.done() for task in connector._tasks)
    assert any("no HL7 mapping" in r.getMessage() for r in caplog.records)
    assert nhs not in caplog.text


def _done(connector: object) -> list[object]:
    queue = connector.queue  # type: ignore[attr-defined]
    return [queue._read(p) for p in sorted((queue.root / "done").glob("*.json"))]
