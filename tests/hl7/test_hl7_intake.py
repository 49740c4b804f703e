"""The connector over real MLLP in front of a real hub: AA only after a verified receipt, AR/AE with an ERR that
names the field for anything refused, and nothing sent to the hub for what is refused."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging

import hl7
import hl7.mllp
import pytest

from adapters.hl7.queue import Entry
from tests.hl7 import samples
from tests.hl7.conftest import StartConnector
from tests.hl7.mllp import START, ack_code, err_location, send
from tests.support.hub import RunningHub


async def centre_inbox(hub: RunningHub) -> list[dict[str, object]]:
    return await hub.trust("RGT").inbox()


async def test_a_referral_from_the_epr_is_acknowledged_after_the_hubs_receipt(
    hub: RunningHub, start_connector: StartConnector
) -> None:
    async with start_connector("RM1") as (connector, port):
        message = samples.referral(samples.nhs_number())
        ack = await send(port, message)
        assert ack_code(ack) == "AA", str(ack)
        assert str(ack.extract_field("MSA", 1, 2, 1, 1)) == str(hl7.parse(message).extract_field("MSH", 1, 10, 1, 1))
        assert not connector.queue.pending()
    [item] = await centre_inbox(hub)
    bundle, signature = await hub.trust("RGT").fetch(str(item["id"]))  # verified against RM1's registered key
    assert signature.owner_ods == "RM1"
    assert bundle["entry"][0]["resource"]["eventCoding"]["code"] == "referral"


async def test_the_same_control_id_sent_again_gets_the_same_ack_and_the_hub_one_message(
    hub: RunningHub, start_connector: StartConnector
) -> None:
    async with start_connector("RM1") as (_connector, port):
        message = samples.referral(samples.nhs_number())
        first, second = await send(port, message), await send(port, message)
    assert ack_code(first) == ack_code(second) == "AA"
    assert str(first) == str(second)
    assert len(await centre_inbox(hub)) == 1


async def test_line_feeds_as_segment_separators_are_refused_naming_msh(
    hub: RunningHub, start_connector: StartConnector
) -> None:
    async with start_connector("RM1") as (_connector, port):
        ack = await send(port, samples.referral(samples.nhs_number()).replace("\r", "\n"))
    assert (ack_code(ack), err_location(ack)) == ("AR", "MSH^1^1")
    assert await centre_inbox(hub) == []


async def test_a_referral_without_pid_is_refused_naming_pid(hub: RunningHub, start_connector: StartConnector) -> None:
    without_pid = "\r".join(s for s in samples.referral(samples.nhs_number()).split("\r") if not s.startswith("PID"))
    async with start_connector("RM1") as (_connector, port):
        ack = await send(port, without_pid)
    assert (ack_code(ack), err_location(ack)) == ("AR", "PID")
    assert await centre_inbox(hub) == []


async def test_an_nhs_number_failing_modulus_11_is_refused_before_sending(
    hub: RunningHub, start_connector: StartConnector
) -> None:
    good = samples.nhs_number()
    wrong = good[:-1] + str((int(good[-1]) + 1) % 10)
    async with start_connector("RM1") as (_connector, port):
        ack = await send(port, samples.referral(wrong))
    assert (ack_code(ack), err_location(ack)) == ("AE", "PID^1^3^1")
    assert "Modulus 11" in str(ack.segment("ERR")(8))
    assert wrong not in str(ack)  # the ACK names the field, not the patient's number
    assert await centre_inbox(hub) == []


async def test_a_message_the_hub_refuses_gets_ae_with_the_hubs_code(
    hub: RunningHub, start_connector: StartConnector
) -> None:
    """A transfer of care for a referral the hub has never seen: mapped and signed, refused by the hub."""
    async with start_connector("RM1") as (_connector, port):
        ack = await send(port, samples.transfer(samples.nhs_number(), "never-referred"))
    assert ack_code(ack) == "AE"
    assert "refused by the hub" in str(ack.segment("ERR")(8))
    assert await centre_inbox(hub) == []


async def test_a_truncated_frame_is_never_acknowledged_nor_sent(
    hub: RunningHub, start_connector: StartConnector
) -> None:
    async with start_connector("RM1") as (connector, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(START + samples.referral(samples.nhs_number()).encode()[:200])  # no end block
        await writer.drain()
        writer.close()
        assert await reader.read() == b""  # the connection ends without an ACK
        assert not connector.queue.pending()
        ack = await send(port, samples.referral(samples.nhs_number()))  # and the connector still serves
        assert ack_code(ack) == "AA"
    assert len(await centre_inbox(hub)) == 1


async def test_a_frame_of_10_mb_is_refused_and_the_connection_closed(
    hub: RunningHub, start_connector: StartConnector
) -> None:
    huge = samples.referral(samples.nhs_number()).replace("for SMDT opinion", "x" * (10 * 1024 * 1024))
    async with start_connector("RM1") as (connector, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(START + huge.encode() + b"\x1c\r")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 30)
        writer.close()
        assert b"MSA|AR|" in answer
        assert not connector.queue.pending()
    assert await centre_inbox(hub) == []


async def test_a_frame_without_the_start_block_is_refused_and_the_next_frame_served(
    hub: RunningHub, start_connector: StartConnector
) -> None:
    async with start_connector("RM1") as (_connector, port):
        reader, writer = await hl7.mllp.open_hl7_connection("127.0.0.1", port)
        try:
            writer.write(samples.referral(samples.nhs_number()).encode() + b"\x1c\r")  # no <VT>
            refused = hl7.parse((await asyncio.wait_for(reader.readblock(), 30)).decode())
            writer.writeblock(samples.referral(samples.nhs_number()).encode())
            accepted = hl7.parse((await asyncio.wait_for(reader.readblock(), 30)).decode())
        finally:
            writer.close()
    assert (ack_code(refused), err_location(refused)) == ("AR", "MSH^1")
    assert ack_code(accepted) == "AA"
    assert len(await centre_inbox(hub)) == 1


async def test_a_fault_of_our_own_closes_the_connection_without_an_ack_logs_it_and_serves_on(
    hub: RunningHub, start_connector: StartConnector, caplog: pytest.LogCaptureFixture
) -> None:
    """The disk is full when the message is queued: nothing was accepted, so no ACK (the EPR sends again), an
    error in the log naming the fault (not the message), and the next connection is served."""
    caplog.set_level(logging.INFO, logger="handover.hl7")
    async with start_connector("RM1") as (connector, port):
        enqueue = connector.queue.enqueue

        def disk_full(entry: Entry) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        connector.queue.enqueue = disk_full  # type: ignore[method-assign]
        message = samples.referral(samples.nhs_number())
        with pytest.raises(asyncio.IncompleteReadError):
            await send(port, message)
        connector.queue.enqueue = enqueue  # type: ignore[method-assign]
        assert ack_code(await send(port, message)) == "AA"  # sent again, taken
    [record] = [r for r in caplog.records if r.name == "handover.hl7" and r.levelname == "ERROR"]
    assert "OSError" in record.getMessage()
    assert len(await centre_inbox(hub)) == 1
