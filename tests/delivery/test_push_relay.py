"""Push delivery: original signed bytes to `{endpoint}/$process-message` with the hub's headers; pull-only trusts
are never pushed; push and mailbox pull coexist and whichever delivers first wins."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from service.delivery.mailbox import Mailboxes
from service.delivery.push import delivery_request_id
from tests.delivery.delivery_fixtures import outbox_world, recipients
from tests.support.hub import Network


async def test_push_delivers_the_original_signed_bytes_with_hub_headers(
    database: str, network: Network, tmp_path: Path
) -> None:
    async with outbox_world(database, network, tmp_path) as world, recipients(network, "RGT") as (rgt,):
        sent = await world.accept("RM1", "RGT")
        relay = world.relay({"RGT": rgt.endpoint})
        assert await relay.run_once() == 1
        [received] = rgt.requests
        assert received.status == 200
        assert received.request_id == str(delivery_request_id(sent.message_id, "RGT"))
        assert (received.message_id, received.sender) == (str(sent.message_id), "RM1")
        assert rgt.bodies[sent.bundle_identifier] == hashlib.sha256(sent.body).hexdigest(), "the exact bytes"
        row = await world.delivery(sent.message_id)
        assert (row["state"], row["channel"], row["attempts"], row["last_status"]) == ("delivered", "push", 1, 200)
        events = await world.fetch(
            "SELECT outcome, leaf FROM audit_events WHERE event_type = 'message-delivered' AND message_id = $1",
            sent.message_id,
        )
        assert [e["outcome"] for e in events] == ["delivered"]
        assert json.loads(events[0]["leaf"])["details"]["channel"] == "push"
        await world.check_inv1()
        await world.check_inv2(rgt, exactly={sent.bundle_identifier})


async def test_pull_only_participants_are_never_pushed(database: str, network: Network, tmp_path: Path) -> None:
    async with outbox_world(database, network, tmp_path) as world, recipients(network, "RGT") as (rgt,):
        to_rde = await world.accept("RGT", "RDE")  # RDE has no endpoint: mailbox only
        relay = world.relay({"RGT": rgt.endpoint})
        assert await relay.run_once() == 0
        assert (await world.delivery(to_rde.message_id))["state"] == "pending"
        assert (await world.delivery(to_rde.message_id))["attempts"] == 0
        mailboxes = Mailboxes(world.pool, world.vault)
        assert await mailboxes.fetch("RDE", to_rde.message_id) == to_rde.body, "decrypted for the mailbox"


async def test_mailbox_acknowledgement_first_means_no_push(database: str, network: Network, tmp_path: Path) -> None:
    async with outbox_world(database, network, tmp_path) as world, recipients(network, "RGT") as (rgt,):
        sent = await world.accept()
        mailboxes = Mailboxes(world.pool, world.vault)
        assert (await mailboxes.acknowledge("RGT", sent.message_id)) is not None
        assert await world.relay({"RGT": rgt.endpoint}).run_once() == 0
        assert rgt.requests == []
        row = await world.delivery(sent.message_id)
        assert (row["state"], row["channel"]) == ("delivered", "mailbox")


async def test_push_first_means_acknowledgement_is_not_a_second_delivery(
    database: str, network: Network, tmp_path: Path
) -> None:
    async with outbox_world(database, network, tmp_path) as world, recipients(network, "RGT") as (rgt,):
        sent = await world.accept()
        await world.relay({"RGT": rgt.endpoint}).run_once()
        mailboxes = Mailboxes(world.pool, world.vault)
        assert await mailboxes.pending("RGT") == []
        ack = await mailboxes.acknowledge("RGT", sent.message_id)
        assert ack is not None and not ack.newly_delivered
        delivered = await world.fetch(
            "SELECT count(*) AS n FROM audit_events WHERE event_type = 'message-delivered' AND message_id = $1",
            sent.message_id,
        )
        assert delivered[0]["n"] == 1
        assert (await world.delivery(sent.message_id))["channel"] == "push"
