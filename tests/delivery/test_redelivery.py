"""Delivering a dead letter again (the deliveries page's action): back in its queue exactly once, audited, with
one non-delivery report however often it dies; and the push circuit's state saved where every process sees it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adapters.recipient import Recipient
from service.delivery.redelivery import deliver_again
from service.delivery.relay import Relay
from service.errors import Code, HandoverError
from tests.delivery.delivery_fixtures import Sent, World, outbox_world, recipients
from tests.support.hub import Network


async def dead_letter_one(world: World, rgt: Recipient, status: int = 422) -> tuple[Sent, Relay, int]:
    """RM1's message to RGT, refused with `status` and so dead-lettered; its relay and delivery id."""
    rgt.refuse_with(status)
    sent = await world.accept("RM1", "RGT")
    relay = world.relay({"RGT": rgt.endpoint})
    await relay.run_once()
    dead = await world.delivery(sent.message_id)
    assert dead["state"] == "dead_letter"
    return sent, relay, dead["id"]


async def test_a_dead_letter_is_requeued_once_audited_and_delivered(
    database: str, network: Network, tmp_path: Path
) -> None:
    async with outbox_world(database, network, tmp_path) as world, recipients(network, "RGT") as (rgt,):
        sent, relay, delivery_id = await dead_letter_one(world, rgt)
        rgt.accept_all()
        requeued = await deliver_again(world.pool, delivery_id, "sam.patel", world.clock)
        assert (requeued.message_id, requeued.recipient_ods) == (sent.message_id, "RGT")
        row = await world.delivery(sent.message_id)
        assert (row["state"], row["attempts"], row["dead_lettered_at"]) == ("pending", 0, None)
        [event] = await world.fetch(
            "SELECT actor, message_id, outcome FROM audit_events WHERE event_type = 'delivery-requeued'"
        )
        assert (event["actor"], event["message_id"], event["outcome"]) == ("sam.patel", sent.message_id, "requeued")

        await relay.run_once()
        assert (await world.delivery(sent.message_id))["state"] == "delivered"
        assert rgt.business.count(sent.bundle_identifier) == 1
        with pytest.raises(HandoverError) as refused:
            await deliver_again(world.pool, delivery_id, "sam.patel", world.clock)
        assert refused.value.code is Code.INVALID_TRANSITION
        await world.check_inv1()


async def test_a_requeued_dead_letter_that_dies_again_keeps_its_one_report_and_cannot_be_requeued_twice(
    database: str, network: Network, tmp_path: Path
) -> None:
    async with outbox_world(database, network, tmp_path) as world, recipients(network, "RGT") as (rgt,):
        sent, relay, delivery_id = await dead_letter_one(world, rgt)
        await deliver_again(world.pool, delivery_id, "sam.patel", world.clock)
        await relay.run_once()  # still refused: dead again
        assert (await world.delivery(sent.message_id))["state"] == "dead_letter"
        assert len(await world.reports()) == 1, "the sender is told once"
        with pytest.raises(HandoverError):
            await deliver_again(world.pool, delivery_id, "sam.patel", world.clock)
        assert (await world.delivery(sent.message_id))["state"] == "dead_letter"
        await world.check_inv1()


async def test_two_simultaneous_requests_requeue_once(database: str, network: Network, tmp_path: Path) -> None:
    async with outbox_world(database, network, tmp_path) as world, recipients(network, "RGT") as (rgt,):
        _, _, delivery_id = await dead_letter_one(world, rgt, 400)
        results = await asyncio.gather(
            *(deliver_again(world.pool, delivery_id, f"ops.{n}", world.clock) for n in range(5)),
            return_exceptions=True,
        )
        assert sum(not isinstance(r, BaseException) for r in results) == 1
        assert all(isinstance(r, HandoverError) for r in results if isinstance(r, BaseException))
        assert len(await world.fetch("SELECT 1 FROM audit_events WHERE event_type = 'delivery-requeued'")) == 1


async def test_the_push_circuit_state_is_saved_per_recipient(database: str, network: Network, tmp_path: Path) -> None:
    async with outbox_world(database, network, tmp_path) as world, recipients(network, "RGT") as (rgt,):
        rgt.refuse_with(503)
        await world.accept("RM1", "RGT")
        relay = world.relay({"RGT": rgt.endpoint})
        queue = relay.queue("RGT")
        assert queue is not None
        for _ in range(queue.circuit.failure_threshold):
            await relay.run_once()
            world.clock.advance(queue.circuit.max_cooldown)
        [saved] = await world.fetch("SELECT recipient_ods, failures, open_until FROM push_circuits")
        assert saved["recipient_ods"] == "RGT"
        assert saved["failures"] == queue.circuit.failures >= queue.circuit.failure_threshold
        assert saved["open_until"] == queue.circuit.open_until is not None
        rgt.accept_all()
        world.clock.advance(queue.circuit.max_cooldown)
        await relay.run_once()
        [saved] = await world.fetch("SELECT failures, open_until FROM push_circuits")
        assert (saved["failures"], saved["open_until"]) == (0, None)
