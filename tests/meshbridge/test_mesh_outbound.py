"""The relay's MESH channel against NHS England's MESH sandbox: a participant with a `mesh_mailbox` and no push
endpoint is delivered to through MESH, marked delivered only on MESH's acknowledgement, and dead-lettered with the
usual non-delivery report when MESH says it cannot be delivered. The sandbox is also stopped mid-run."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from adapters.pathway import Pathway
from adapters.recipient import Recipient
from service.meshbridge.bridge import MeshBridge, open_bridge
from service.meshbridge.inbound import Outcome
from tests.support.hub import RunningHub, running_hub
from tests.support.mesh import HUB_MAILBOX, MeshSandbox, audit_events, in_thread, mesh_trust
from tests.support.messages import error_codes
from tests.support.pathways import story_for


async def delivery_to(dsn: str, ods: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            """
            SELECT d.*, s.mesh_message_id, m.sender_ods FROM deliveries d JOIN messages m ON m.id = d.message_id
            LEFT JOIN mesh_sends s ON s.delivery_id = d.id
            WHERE d.recipient_ods = $1 AND m.sender_ods <> 'hub' ORDER BY d.id DESC LIMIT 1
            """,
            ods,
        )
    finally:
        await conn.close()
    assert row is not None
    return dict(row)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        assert loop.time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.1)


async def referred_by_mesh(hub: RunningHub, sandbox: MeshSandbox, bridge: MeshBridge, story: Pathway) -> None:
    """RM1 refers by MESH; the hub accepts it and receipts it by MESH; the centre pulls it."""
    rm1 = mesh_trust(sandbox, hub.network, "RM1")
    await in_thread(rm1.send, rm1.sign(story.referral()))
    [handled] = await bridge.inbound.poll_once()
    assert handled.outcome is Outcome.ACCEPTED
    assert [r.kind for r in await in_thread(rm1.receive)] == ["receipt"]
    centre = hub.trust("RGT")
    [item] = await centre.inbox()
    await centre.acknowledge(item["id"])


async def test_a_message_to_a_mesh_only_trust_goes_by_mesh_and_is_delivered_on_its_acknowledgement(
    mesh_hub: RunningHub, sandbox: MeshSandbox, bridge: MeshBridge
) -> None:
    story = story_for(601)
    await referred_by_mesh(mesh_hub, sandbox, bridge, story)
    centre = mesh_hub.trust("RGT")
    sent = await centre.send(centre.sign(story.outcome("accepted")))
    assert sent.accepted

    assert await bridge.outbound.run_once() == 1
    row = await delivery_to(mesh_hub.dsn, "RM1")
    assert (row["state"], row["channel"]) == ("pending", None), "sent, not yet acknowledged by the recipient"
    assert row["mesh_message_id"]

    rm1 = mesh_trust(sandbox, mesh_hub.network, "RM1")
    [received] = await in_thread(rm1.receive)  # verifies RGT's signature against the registry, then acknowledges
    assert (received.kind, received.workflow_id) == ("message", "HANDOVER_REFERRAL_OUTCOME")
    assert received.signer is not None and received.signer.owner_ods == "RGT", "the signature survived the hop"
    assert received.body["identifier"] == story.sent["referral-outcome"]["identifier"]

    await asyncio.sleep(0.2)  # the next tracking is due
    await bridge.outbound.run_once()
    row = await delivery_to(mesh_hub.dsn, "RM1")
    assert (row["state"], row["channel"]) == ("delivered", "mesh")
    events = await audit_events(mesh_hub.dsn, row["message_id"])
    assert [(kind, outcome) for kind, outcome, _ in events] == [
        ("message-accepted", "accepted"),
        ("message-delivered", "delivered"),
    ]
    assert row["mesh_message_id"] in json.dumps(events[1][2]) and "mesh" in json.dumps(events[1][2])


async def test_an_expired_mesh_message_is_dead_lettered_with_a_report_to_its_sender(
    mesh_hub: RunningHub, sandbox: MeshSandbox, bridge: MeshBridge
) -> None:
    story = story_for(602)
    await referred_by_mesh(mesh_hub, sandbox, bridge, story)
    centre = mesh_hub.trust("RGT")
    assert (await centre.send(centre.sign(story.outcome("accepted")))).accepted
    await bridge.outbound.run_once()
    row = await delivery_to(mesh_hub.dsn, "RM1")

    # RM1 never collects it: MESH marks it undeliverable and reports that to the hub's mailbox.
    await in_thread(lambda: sandbox.expire(row["mesh_message_id"], sender_mailbox=HUB_MAILBOX, workflow="X"))
    [handled] = await bridge.inbound.poll_once()
    assert handled.outcome is Outcome.REPORT
    assert await in_thread(sandbox.inbox, HUB_MAILBOX) == [], "the report is acknowledged"
    row = await delivery_to(mesh_hub.dsn, "RM1")
    assert row["state"] == "dead_letter"
    assert "mesh-undeliverable" in row["last_error"]

    [report_item] = await centre.inbox()
    report, signature = await centre.fetch(report_item["id"])
    assert signature.owner_ods == "hub" and report_item["event"] == "acknowledgement"
    outcome = next(e["resource"] for e in report["entry"] if e["resource"]["resourceType"] == "OperationOutcome")
    assert error_codes(outcome)[0] == "undeliverable"
    assert "MESH" in outcome["issue"][0]["details"]["text"]
    await bridge.outbound.run_once()  # tracking later finds nothing pending: no second report
    assert len(await centre.inbox()) == 1


async def test_a_mailbox_mesh_does_not_know_dead_letters_at_once_with_a_report(
    mesh_hub: RunningHub, sandbox: MeshSandbox, bridge: MeshBridge
) -> None:
    story = story_for(603, referrer="RC9")  # RC9's registered mailbox does not exist on MESH
    rc9, centre = mesh_hub.trust("RC9"), mesh_hub.trust("RGT")
    assert (await rc9.send(rc9.sign(story.referral()))).accepted  # RC9 may still send over HTTPS
    [item] = await centre.inbox()
    await centre.acknowledge(item["id"])
    assert (await centre.send(centre.sign(story.outcome("accepted")))).accepted

    await bridge.outbound.run_once()
    row = await delivery_to(mesh_hub.dsn, "RC9")
    assert (row["state"], row["attempts"], row["mesh_message_id"]) == ("dead_letter", 1, None)
    [report_item] = await centre.inbox()
    assert report_item["event"] == "acknowledgement"


async def test_the_sandbox_stopped_mid_run_loses_nothing_and_the_bridge_resumes(
    mesh_hub: RunningHub, sandbox: MeshSandbox, bridge: MeshBridge
) -> None:
    story = story_for(604)
    rm1 = mesh_trust(sandbox, mesh_hub.network, "RM1")
    centre = mesh_hub.trust("RGT")
    await in_thread(rm1.send, rm1.sign(story.referral()))
    sandbox.stop()  # before the bridge has read it
    stop = asyncio.Event()
    running = asyncio.create_task(bridge.run(stop))
    try:
        await asyncio.sleep(1.0)  # several passes against a MESH that is not there
        assert await centre.inbox() == [], "nothing accepted while MESH is down"
        sandbox.start()  # same port, same store: the referral is still in the hub's inbox
        await eventually(lambda: _has_inbox(centre))
        [item] = await centre.inbox()
        _, signature = await centre.fetch(item["id"])
        assert signature.owner_ods == "RM1"
        await centre.acknowledge(item["id"])

        sandbox.stop()  # down again, now while the hub has something for RM1
        assert (await centre.send(centre.sign(story.outcome("accepted")))).accepted
        await asyncio.sleep(1.0)
        row = await delivery_to(mesh_hub.dsn, "RM1")
        assert (row["state"], row["mesh_message_id"]) == ("pending", None), "kept, waiting for MESH"
        assert "MESH unavailable" in (row["last_error"] or "")
        sandbox.start()
        await eventually(lambda: _mesh_sent(mesh_hub.dsn))
        received = await in_thread(rm1.receive)
        assert sorted(r.kind for r in received) == ["message", "receipt"], "one receipt, one message: nothing lost"
        await eventually(lambda: _delivered(mesh_hub.dsn))
    finally:
        stop.set()
        await running
    assert await in_thread(sandbox.inbox, HUB_MAILBOX) == []


async def test_a_message_sent_by_mesh_and_pushed_to_the_centre_verifies_with_the_senders_key(
    mesh_hub: RunningHub, sandbox: MeshSandbox, database: str, tmp_path: Path
) -> None:
    recipient = Recipient("RGT", mesh_hub.network.registry)

    def centre_pushed(doc: dict[str, Any]) -> None:
        doc["participants"]["RGT"]["endpoint"] = recipient.endpoint

    network = mesh_hub.network.edited(tmp_path / "pushed", centre_pushed)
    async with (
        recipient,
        running_hub(network, database) as hub,
        open_bridge(hub.settings, sandbox.settings(HUB_MAILBOX), database) as bridge,
    ):
        rm1 = mesh_trust(sandbox, network, "RM1")
        signed = rm1.sign(story_for(605).referral())
        await in_thread(rm1.send, signed)
        await bridge.inbound.poll_once()
        await asyncio.wait_for(recipient.processed.wait(), timeout=30)
        assert recipient.business == [signed["identifier"]["value"]]
        assert recipient.problems == [], "the pushed bytes verify with RM1's key"


async def _has_inbox(centre: Any) -> bool:
    return bool(await centre.inbox())


async def _mesh_sent(dsn: str) -> bool:
    return bool((await delivery_to(dsn, "RM1"))["mesh_message_id"])


async def _delivered(dsn: str) -> bool:
    return (await delivery_to(dsn, "RM1"))["state"] == "delivered"
