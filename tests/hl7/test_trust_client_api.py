"""The trust client as vendors use it (the examples in adapters/README.md): send, receipt checked, poll, fetch
verified, acknowledge; and the witness, which holds the hub to one audit history."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.trust_client import ReceiptError
from adapters.witness import Witness, WitnessError
from tests.hl7.mllp import until
from tests.support.databases import DatabaseFactory
from tests.support.hub import Network, RunningHub, running_hub
from tests.support.messages import referral


async def test_send_poll_verify_and_acknowledge_as_in_the_readme(hub: RunningHub) -> None:
    referrer, centre = hub.trust("RM1"), hub.trust("RGT")
    signed = referrer.sign(referral())
    result = await referrer.send(signed)
    assert result.accepted, result.error_codes
    params = referrer.check_receipt(result.body, signed)
    assert params["sha256"]
    other = referrer.sign(referral())
    with pytest.raises(ReceiptError):
        referrer.check_receipt(result.body, other)  # a receipt proves only the message it names
    [item] = await centre.inbox()
    message, signature = await centre.fetch(item["id"])
    assert (signature.owner_ods, message["identifier"]) == ("RM1", signed["identifier"])
    await centre.acknowledge(item["id"])
    assert await centre.inbox() == []


async def test_a_receipt_not_signed_by_the_hub_is_refused(hub: RunningHub) -> None:
    referrer = hub.trust("RM1")
    signed = referrer.sign(referral())
    result = await referrer.send(signed)
    forged = copy.deepcopy(result.body)
    del forged["signature"]
    forged = referrer.sign(forged)  # re-signed by a trust, not the hub
    with pytest.raises(ReceiptError):
        referrer.check_receipt(forged, signed)


@pytest.fixture
async def other_hub(network: Network, databases: DatabaseFactory) -> AsyncIterator[RunningHub]:
    """A second hub with the same keys but its own database: a different history under the same signature."""
    dsn = await databases.create()
    try:
        async with running_hub(network, dsn, checkpoint_seconds=0.2) as running:
            yield running
    finally:
        await databases.drop(dsn)


async def observe_at_least(witness: Witness, size: int) -> int:
    seen = 0

    async def big_enough() -> bool:
        nonlocal seen
        seen = (await witness.observe()).tree_size
        return seen >= size

    await until(big_enough)
    return seen


async def test_the_witness_keeps_checkpoints_and_refuses_a_forked_or_shrunk_history(
    hub: RunningHub, other_hub: RunningHub, tmp_path: Path
) -> None:
    for _ in range(2):
        assert (await hub.trust("RM1").send(hub.trust("RM1").sign(referral()))).accepted
    assert (await other_hub.trust("RM1").send(other_hub.trust("RM1").sign(referral()))).accepted

    witness = Witness(hub.session, hub.base_url, hub.network.registry, tmp_path / "witness")
    first = await observe_at_least(witness, 1)
    assert (await hub.trust("RM1").send(hub.trust("RM1").sign(referral()))).accepted
    second = await observe_at_least(witness, first + 1)  # grown, with a verified consistency proof
    assert second > first
    assert sorted(p.name for p in (tmp_path / "witness").glob("0*.note"))[-1] == f"{second:020d}.note"

    # the same witness memory (reopened from disk), shown the other hub's history under the same key
    reopened = Witness(other_hub.session, other_hub.base_url, hub.network.registry, tmp_path / "witness")
    assert reopened.latest() is not None
    with pytest.raises(WitnessError):
        await reopened.observe()  # fewer entries, or the same size with another root, or no consistent proof
    for _ in range(6):
        assert (await other_hub.trust("RM1").send(other_hub.trust("RM1").sign(referral()))).accepted
    witness_b = Witness(other_hub.session, other_hub.base_url, hub.network.registry, tmp_path / "witness")

    async def other_is_bigger() -> bool:
        try:
            await witness_b.observe()
        except WitnessError as err:
            return "does not extend" in str(err)
        return False

    await until(other_is_bigger)  # a longer tree that is not an extension is refused, and not kept
    assert (await witness.observe()).tree_size >= second
