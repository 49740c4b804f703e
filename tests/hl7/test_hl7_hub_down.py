"""A hub that cannot be reached: the EPR's message is on disk before anything else happens, the EPR gets no ACK
(it waits, and may re-send), the queue survives a connector restart, and AA comes only after the receipt."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from adapters.hl7 import inbound
from adapters.hl7.queue import DiskQueue, Entry
from tests.hl7 import samples
from tests.hl7.conftest import StartConnector
from tests.hl7.mllp import ack_code, send, until
from tests.support.faultproxy import FaultProxy
from tests.support.hub import RunningHub


async def test_queued_while_the_hub_is_down_then_sent_once_after_a_restart_and_acked_after_the_receipt(
    hub: RunningHub, start_connector: StartConnector, tmp_path: Path
) -> None:
    port = urlsplit(hub.base_url).port
    assert port is not None
    queue_dir = tmp_path / "rm1-queue"
    message = samples.referral(samples.nhs_number())
    async with FaultProxy("127.0.0.1", port) as proxy:
        proxy.reset(refuse=True)  # the hub is unreachable
        via_proxy = f"http://127.0.0.1:{proxy.port}"
        async with start_connector("RM1", base_url=via_proxy, queue_dir=queue_dir) as (connector, mllp_port):
            with pytest.raises(TimeoutError):
                await send(mllp_port, message, within=2.0)  # no ACK at all while there is no receipt
            [queued] = connector.queue.pending()
            assert queued.signed["signature"]["who"]["identifier"]["value"] == "RM1"
        # the connector process is gone; only the disk remains
        assert len(list((queue_dir / "pending").glob("*.json"))) == 1
        assert await hub.trust("RGT").inbox() == []
        proxy.heal()
        async with start_connector("RM1", base_url=via_proxy, queue_dir=queue_dir) as (connector, mllp_port):

            async def sent() -> bool:
                return not connector.queue.pending()

            await until(sent)  # the restarted connector sends what was queued, on its own
            ack = await send(mllp_port, message)  # the EPR re-sends the same MSH-10
    assert ack_code(ack) == "AA"
    assert len(await hub.trust("RGT").inbox()) == 1


async def test_a_crash_after_the_hub_took_the_message_but_before_the_ack_sends_it_again_into_one_acceptance(
    hub: RunningHub, start_connector: StartConnector, tmp_path: Path
) -> None:
    """The queue entry is still pending (the crash came before `done/` was written) though the hub has the
    message: the restarted connector sends the same signed bytes, the hub answers with the original receipt,
    and the EPR gets AA; the centre has one message."""
    queue_dir = tmp_path / "rm1-queue"
    message = samples.referral(samples.nhs_number())
    async with start_connector("RM1", queue_dir=queue_dir) as (connector, _port):
        parsed = inbound.parse(message.encode())
        signed = connector.client.sign(inbound.to_bundle(parsed, connector.trusts))
        entry = Entry(parsed.control_id, "LORENZO", "RM1", parsed.trigger, signed)
        assert (await connector.client.send(signed, request_id=entry.request_id)).accepted  # the hub took it ...
    DiskQueue(queue_dir).enqueue(entry)  # ... and the disk still says pending, as after a crash at that moment
    async with start_connector("RM1", queue_dir=queue_dir) as (_connector, mllp_port):
        ack = await send(mllp_port, message)
    assert ack_code(ack) == "AA", str(ack)
    assert len(await hub.trust("RGT").inbox()) == 1
