"""The mailbox loop outlives any one message: a message whose mapping raises is logged by its hub id (no patient
data), counted, left in the mailbox and tried again later with a growing pause, and the messages after it are
delivered; a poll that raises does not end the loop, and polls failing in a row are shown (for the alert in
deploy/prometheus/hl7-alerts.yml). A fake mailbox, so the faults are exact and the test fast."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from adapters import builders
from adapters.hl7.mailbox import MailboxDelivery
from adapters.hl7.metrics import ConnectorMetrics
from adapters.hl7.queue import DiskQueue
from adapters.trust_client import TrustClient
from tests.hl7.mllp import until
from tests.support.hub import EVENT_SYSTEM
from tests.support.messages import NAMES, referral


def outcome() -> dict[str, Any]:
    return builders.referral_outcome(
        EVENT_SYSTEM,
        "RGT",
        NAMES["RGT"],
        referral(),
        decision="accepted",
        plan="Listed.",
        decided_by=builders.Clinician("Fenwright", "Morgan", "7100001"),
    )


class FakeMailbox:
    """RM1's inbox: `messages` by id, in order; `acknowledged` what was acknowledged; `fail_polls` inbox calls
    that raise `failure` before the inbox answers; `on_poll`, if set, is called as each poll begins."""

    def __init__(
        self, messages: dict[str, dict[str, Any]], fail_polls: int = 0, failure: Exception | None = None
    ) -> None:
        self.messages, self.acknowledged, self.fail_polls = messages, list[str](), fail_polls
        self.failure = failure or RuntimeError("the inbox answer was not what was expected")
        self.on_poll: Callable[[], None] | None = None

    async def inbox(self) -> list[dict[str, Any]]:
        if self.on_poll is not None:
            self.on_poll()
        if self.fail_polls:
            self.fail_polls -= 1
            raise self.failure
        return [{"id": key} for key in self.messages if key not in self.acknowledged]

    async def fetch(self, message_id: str) -> tuple[dict[str, Any], SimpleNamespace]:
        return copy.deepcopy(self.messages[message_id]), SimpleNamespace(owner_ods="RGT")

    async def acknowledge(self, message_id: str) -> dict[str, Any]:
        self.acknowledged.append(message_id)
        return {}


def delivery(mailbox: FakeMailbox, tmp_path: Path, given: list[bytes]) -> MailboxDelivery:
    async def exchange(message: bytes) -> bytes:
        """An EPR that takes everything: AA naming the message's MSH-10."""
        given.append(message)
        control_id = message.split(b"\r")[0].split(b"|")[9]
        return b"MSH|^~\\&|EPR|RM1|HANDOVER|RM1|20261205||ACK|A1|P|2.5\rMSA|AA|" + control_id + b"\r"

    client = cast(TrustClient, mailbox)
    return MailboxDelivery(client, DiskQueue(tmp_path / "q"), "RM1", exchange, metrics=ConnectorMetrics(), poll=0.01)


async def test_a_message_whose_mapping_raises_is_kept_counted_and_the_next_one_delivered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = outcome()
    del broken["entry"][0]["resource"]["focus"]  # the Task cannot be found: the mapping raises
    good = outcome()
    nhs = good["entry"][2]["resource"]["identifier"][0]["value"]
    mailbox = FakeMailbox({"m-broken": broken, "m-good": good})
    given: list[bytes] = []
    deliver = delivery(mailbox, tmp_path, given)
    deliver.held.clock = lambda: 1000.0  # time stands still: on a loaded machine the short backoff could pass
    caplog.set_level(logging.INFO, logger="handover.hl7")
    assert await deliver.deliver_received() == 1
    assert mailbox.acknowledged == ["m-good"]
    assert [m.split(b"\r")[0].split(b"|")[8] for m in given] == [b"RRI^I12^RRI_I12"]
    assert deliver.metrics.value("handover_hl7_mailbox_errors_total", error="KeyError") == 1
    [record] = [r for r in caplog.records if "m-broken" in r.getMessage()]
    assert "KeyError" in record.getMessage() and record.levelname == "ERROR"
    assert nhs not in caplog.text
    assert await deliver.deliver_received() == 0  # not tried again at poll speed: it waits its turn
    assert deliver.metrics.value("handover_hl7_mailbox_errors_total", error="KeyError") == 1
    assert not deliver.held.due("m-broken")


async def test_a_poll_that_raises_does_not_end_the_loop(tmp_path: Path) -> None:
    mailbox = FakeMailbox({"m-good": outcome()}, fail_polls=2)
    given: list[bytes] = []
    deliver = delivery(mailbox, tmp_path, given)
    task = asyncio.create_task(deliver.loop())
    try:

        async def delivered() -> bool:
            assert not task.done(), task
            return mailbox.acknowledged == ["m-good"]

        await until(delivered, within=10)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert deliver.metrics.value("handover_hl7_mailbox_errors_total", error="RuntimeError") == 2


async def test_polls_failing_in_a_row_are_shown_while_they_last_and_cleared_by_a_good_poll(tmp_path: Path) -> None:
    """The hub or the EPR unreachable counts nothing else: handover_hl7_mailbox_failed_polls is what an alert sees."""
    mailbox = FakeMailbox({"m-good": outcome()}, fail_polls=3, failure=ConnectionRefusedError("refused"))
    deliver = delivery(mailbox, tmp_path, [])
    seen: list[float] = []
    mailbox.on_poll = lambda: seen.append(deliver.metrics.value("handover_hl7_mailbox_failed_polls"))
    task = asyncio.create_task(deliver.loop())
    try:

        async def delivered_and_shown() -> bool:
            assert not task.done(), task
            return mailbox.acknowledged == ["m-good"] and len(seen) >= 5

        await until(delivered_and_shown, within=10)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert seen[:5] == [0, 1, 2, 3, 0]  # as each poll began: three failures in a row, then the good poll
    assert deliver.metrics.value("handover_hl7_mailbox_failed_polls") == 0
    assert deliver.metrics.value("handover_hl7_mailbox_errors_total", error="ConnectionRefusedError") == 0
