"""The EPR's answers to what the connector hands it (issue 26, item 1): every conformant ACK form is delivery
(MSH-9 `ACK` alone, `ACK^R01`, `ACK^I12^ACK`, LF-separated, v2.2-2.8, CA), AE/AR/CE/CR are refusals, MSA-2 must
name the control ID sent, and an answer that cannot be read backs off (bounded), is counted and logged by field.
Before, a plain `ACK` was refused by the strict parser and the same referral was handed over every 2 s for ever."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import cast

import hl7
import hl7.mllp
import pytest

from adapters.hl7 import answers
from adapters.hl7.mailbox import STUCK_AFTER, MailboxDelivery
from adapters.hl7.metrics import ConnectorMetrics
from adapters.hl7.queue import DiskQueue
from adapters.trust_client import TrustClient
from tests.hl7 import samples
from tests.hl7.conftest import StartConnector
from tests.hl7.mllp import EprListener, ack_code, send, until
from tests.hl7.test_hl7_mailbox_faults import FakeMailbox, outcome
from tests.support.hub import RunningHub

SENT = "6f0e3f5c-1c1f-4c55-9f0a-5d1e7c6a2b10"


def msh(message_type: str, version: str = "2.5") -> str:
    return f"MSH|^~\\&|EPR|RGT|HANDOVER|RGT|20261205120000||{message_type}|A{version}|P|{version}"


@pytest.mark.parametrize(
    "raw",
    [
        f"{msh('ACK', '2.2')}\rMSA|AA|{SENT}\r",
        f"{msh('ACK^R01', '2.3')}\rMSA|AA|{SENT}|OK\r",
        f"{msh('ACK^I12^ACK')}\rMSA|AA|{SENT}\r",
        f"{msh('ACK^I12^ACK', '2.8')}\nMSA|AA|{SENT}\n",
        f"{msh('ACK')}\r\nMSA|CA|{SENT}\r\n",
        f"{msh('RRI^I12^RRI_I12')}\rMSA|AA|{SENT}\rRF1|A\r",
        f"MSH#@*!%#EPR#RGT#HANDOVER#RGT#20261205##ACK#A1#P#2.5\rMSA#AA#{SENT}\r",
    ],
    ids=["ACK 2.2", "ACK^R01", "ACK^I12^ACK", "LF 2.8", "CA CRLF", "RRI answer", "other separators"],
)
def test_every_conformant_acceptance_is_delivery(raw: str) -> None:
    assert answers.read(raw.encode(), SENT).delivered


@pytest.mark.parametrize("code", ["AE", "AR", "CE", "CR"])
def test_refusals_are_refusals_naming_the_epr_err_location(code: str) -> None:
    raw = f"{msh('ACK')}\rMSA|{code}|{SENT}\rERR||PID^1^3^1|101^Required field missing^HL70357|E\r"
    answer = answers.read(raw.encode(), SENT)
    assert (answer.outcome, answer.problem) == (answers.REFUSED, f"MSA-1 {code}, ERR PID^1^3^1")


@pytest.mark.parametrize(
    ("raw", "outcome", "field"),
    [
        (f"{msh('ACK')}\rMSA|AA|someone-else\r", answers.OTHER_MESSAGE, "MSA-2"),
        (f"{msh('ACK')}\rMSA|AA\r", answers.OTHER_MESSAGE, "MSA-2"),
        (f"{msh('ACK')}\rMSA|OK|{SENT}\r", answers.UNREADABLE, "MSA-1"),
        (f"{msh('ACK')}\r", answers.UNREADABLE, "MSA"),
        ("HTTP/1.1 400 Bad Request\r\n\r\n", answers.UNREADABLE, "MSH-1"),
        ("", answers.UNREADABLE, "MSH-1"),
    ],
)
def test_an_answer_that_is_not_an_acceptance_of_this_message_says_which_field(
    raw: str, outcome: str, field: str
) -> None:
    answer = answers.read(raw.encode(), SENT)
    assert answer.outcome == outcome
    assert answer.problem.startswith(field)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_an_unreadable_answer_backs_off_exponentially_is_counted_and_logged_as_stuck_after_a_bound(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mailbox = FakeMailbox({"m1": outcome()})
    handed: list[bytes] = []

    async def exchange(message: bytes) -> bytes:
        handed.append(message)
        return f"{msh('ACK')}\rMSA|AA|not-what-was-sent\r".encode()

    deliver = MailboxDelivery(
        cast(TrustClient, mailbox), DiskQueue(tmp_path), "RM1", exchange, metrics=ConnectorMetrics(), poll=2.0
    )
    clock = Clock()
    deliver.held.clock = clock
    caplog.set_level(logging.INFO, logger="handover.hl7")
    waits = []
    for _ in range(STUCK_AFTER + 3):
        before = len(handed)
        while len(handed) == before:  # poll until it is due again, counting the polls that skipped it
            await deliver.deliver_received()
            clock.now += 1.0
        waits.append(clock.now)
    gaps = [round(b - a) for a, b in itertools.pairwise(waits)]
    assert gaps == [2, 4, 8, 16, 32, 64, 128], gaps  # doubling from the poll interval, not every poll
    assert deliver.held.delay(20) == 300  # and bounded
    assert mailbox.acknowledged == []  # never taken as delivered
    assert deliver.metrics.value("handover_hl7_epr_answers_total", outcome="other-message") == len(handed)
    assert deliver.metrics.value("handover_hl7_mailbox_stuck") == 1
    logged = [r for r in caplog.records if "m1" in r.getMessage()]
    assert all("MSA-2" in r.getMessage() for r in logged)
    assert [r.levelname for r in logged][STUCK_AFTER - 1 :] == ["ERROR"] * (len(logged) - STUCK_AFTER + 1)


class PlainAckEpr(EprListener):
    """An EPR that answers as HL7 2.1-2.3 systems do: MSH-9 `ACK` with no trigger event, CR-separated."""

    async def _serve(self, reader: hl7.mllp.HL7StreamReader, writer: hl7.mllp.HL7StreamWriter) -> None:
        try:
            while True:
                message = await reader.readmessage()
                self.received.append(message)
                self.arrived.set()
                control_id = str(message.segment("MSH")(10))
                writer.writeblock(f"{msh('ACK', '2.2')}\rMSA|AA|{control_id}\r".encode())
                await writer.drain()
        except Exception:  # noqa: BLE001 - the connector hung up
            writer.close()


async def test_a_plain_ack_from_the_epr_delivers_the_referral_once(
    hub: RunningHub, start_connector: StartConnector
) -> None:
    centre_epr = await PlainAckEpr().start()
    try:
        async with start_connector("RM1") as (_rm1, rm1_port), start_connector("RGT", epr=centre_epr) as (rgt, _p):
            assert ack_code(await send(rm1_port, samples.referral(samples.nhs_number()))) == "AA"
            await centre_epr.next_of("REF^I12")

            async def acknowledged_at_the_hub() -> bool:
                return await hub.trust("RGT").inbox() == []

            await until(acknowledged_at_the_hub)
            await rgt.deliver_received()  # another poll: nothing left to hand over
            assert len(centre_epr.received) == 0, "the referral was handed to the EPR again"
            assert rgt.metrics.value("handover_hl7_epr_answers_total", outcome="accepted") == 1
    finally:
        await centre_epr.stop()
