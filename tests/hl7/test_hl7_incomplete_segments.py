"""Incomplete segments get an AR with an ERR naming the field over the real MLLP connection, which stays open for
the next message (issue 26, item 1: a bare `NTE|`, a short PRD, an empty PRD-2 or PRD-7, an OBX shorter than 6
used to raise IndexError and drop the connection with no ACK); an LF-separated message is refused with its
readable MSH-10 in MSA-2. No hub is needed: nothing refused reaches it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import hl7
import hl7.mllp
import pytest

from adapters.hl7.connector import Hl7Connector
from adapters.hl7.inbound import Trusts
from adapters.hl7.queue import DiskQueue
from adapters.trust_client import TrustClient
from tests.hl7 import samples
from tests.hl7.mllp import ack_code, err_location
from tests.support.hub import EVENT_SYSTEM
from tests.support.messages import NAMES


@pytest.fixture
async def port(tmp_path: Path) -> AsyncIterator[int]:
    """RM1's connector with no hub behind it (a refusal never reaches one)."""
    queue = DiskQueue(tmp_path / "queue")
    trusts = Trusts("RM1", NAMES, EVENT_SYSTEM, queue.received)
    connector = Hl7Connector(cast(TrustClient, None), queue, trusts, retry_seconds=60)
    bound = await connector.start("127.0.0.1", 0)
    try:
        yield bound
    finally:
        await connector.stop()


def referral_with(replace: dict[str, str], control: str = "CTRL-0001") -> str:
    """The sample referral with some segments replaced, by their first three letters and role (`PRD|RP`)."""
    segments = samples.referral(samples.nhs_number(), control=control).rstrip("\r").split("\r")
    out = []
    for segment in segments:
        key = next((k for k in replace if segment.startswith(k)), None)
        if key is None:
            out.append(segment)
        elif replace[key]:
            out.append(replace[key])
    return "\r".join(out) + "\r"


def discharge_with(obx: str) -> str:
    segments = [
        s for s in samples.discharge(samples.nhs_number(), "REF-1", sender="RM1", receiver="RGT").split("\r") if s
    ]
    return "\r".join([*(s for s in segments if not s.startswith("OBX")), obx]) + "\r"


CASES: dict[str, tuple[str, str]] = {
    "bare NTE": (referral_with({"NTE": "NTE|"}), "NTE^1^3"),
    "NTE without NTE-3": (referral_with({"NTE": "NTE|1|L"}), "NTE^1^3"),
    "PRD shorter than 8 fields": (referral_with({"PRD|RP": "PRD|RP|Referrer^Sam|||"}), "PRD^1^7"),
    "empty PRD-2": (referral_with({"PRD|RP": "PRD|RP||||||7000001^^^GMC"}), "PRD^1^2"),
    "empty PRD-7": (referral_with({"PRD|RP": "PRD|RP|Referrer^Sam|||||"}), "PRD^1^7"),
    "bare PRD": (referral_with({"PRD|RP": "PRD|RP"}), "PRD^1^2"),
    "OBX shorter than 6": (discharge_with("OBX|1|TX|SUMMARY"), "OBX^1^5"),
    "OBX without OBX-2": (discharge_with("OBX|1"), "OBX^1^2"),
}


async def exchange(port: int, messages: list[str]) -> list[hl7.Message]:
    """Several messages over one MLLP connection, each answered before the next."""
    reader, writer = await hl7.mllp.open_hl7_connection("127.0.0.1", port)
    answers = []
    try:
        for message in messages:
            writer.writeblock(message.encode())
            await writer.drain()
            answers.append(hl7.parse((await reader.readblock()).decode()))
    finally:
        writer.close()
    return answers


@pytest.mark.parametrize("case", sorted(CASES))
async def test_an_incomplete_segment_gets_ar_naming_the_field_and_the_connection_serves_on(
    port: int, case: str
) -> None:
    message, location = CASES[case]
    first, second = await exchange(port, [message, message.replace("CTRL-0001", "CTRL-0002")])
    assert (ack_code(first), err_location(first)) == ("AR", location), str(first)
    assert str(first.extract_field("MSA", 1, 2, 1, 1)) == _control_id(message)
    assert ack_code(second) == "AR"  # the same connection answered the next message


async def test_an_lf_separated_message_is_refused_with_its_control_id_in_msa_2(port: int) -> None:
    message = samples.referral(samples.nhs_number(), control="LF-CTRL-42").replace("\r", "\n")
    [answer] = await exchange(port, [message])
    assert (ack_code(answer), err_location(answer)) == ("AR", "MSH^1^1")
    assert str(answer.extract_field("MSA", 1, 2, 1, 1)) == "LF-CTRL-42"
    assert str(answer.segment("MSH")(5)) == "LORENZO"  # answered to the EPR that sent it (MSH-3)


async def test_a_header_without_trigger_is_refused_with_its_control_id(port: int) -> None:
    message = samples.referral(samples.nhs_number(), control="NO-TRIGGER-1").replace("REF^I12^REF_I12", "REF")
    [answer] = await exchange(port, [message])
    assert (ack_code(answer), err_location(answer)) == ("AR", "MSH^1^9^2")
    assert str(answer.extract_field("MSA", 1, 2, 1, 1)) == "NO-TRIGGER-1"


def _control_id(message: Any) -> str:
    return str(message).split("\r")[0].split("|")[9]
