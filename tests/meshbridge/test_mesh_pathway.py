"""Done-when for the MESH bridge: a trust with only a MESH mailbox (RM1) completes the demo's pathway with the
centre (RGT, over HTTPS), against NHS England's MESH sandbox. Every message is verified end to end by the party
that receives it (the sender's signature, not the transport), every receipt against the hub's key, business
acknowledgements flow both ways, responsibility is checked after every step, each delivery to RM1 is done by
MESH, and the audit log (checked with every receipt) verifies."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from adapters import builders
from adapters.mesh_trust import MeshTrust
from adapters.pathway import Pathway
from service.auditlog.verify_cli import verify_database
from service.meshbridge.bridge import MeshBridge
from tests.support.hub import EVENT_SYSTEM, RunningHub
from tests.support.mesh import MeshSandbox, in_thread, mesh_trust
from tests.support.messages import NAMES
from tests.support.pathways import story_for


class Parties:
    """RM1 on MESH, RGT over HTTPS, the bridge between, and every receipt either was given."""

    def __init__(self, hub: RunningHub, sandbox: MeshSandbox, bridge: MeshBridge) -> None:
        self.hub = hub
        self.bridge = bridge
        self.rm1: MeshTrust = mesh_trust(sandbox, hub.network, "RM1")
        self.centre = hub.trust("RGT")
        self.receipts: list[tuple[str, Any]] = []

    async def rm1_sends(self, bundle: dict[str, Any]) -> None:
        mesh_id = await in_thread(self.rm1.send, self.rm1.sign(bundle))
        await self.bridge.run_once()
        replies = await in_thread(self.rm1.receive)  # each receipt's signature and digest checked
        receipt = next(r for r in replies if r.in_reply_to == mesh_id)
        assert receipt.kind == "receipt", receipt.body
        self.receipts.append((f"RM1 {mesh_id}", receipt.body))
        await self._rm1_takes([r for r in replies if r.kind == "message"])

    async def centre_sends(self, bundle: dict[str, Any]) -> None:
        result = await self.centre.send(self.centre.sign(bundle))
        assert result.accepted, result.body
        self.receipts.append((f"RGT {result.request_id}", result.body))

    async def centre_collects(self) -> list[dict[str, Any]]:
        """RGT fetches (verifying RM1's signature), acknowledges, and business-acknowledges what is not an ack."""
        taken = []
        for item in await self.centre.inbox():
            bundle, signature = await self.centre.fetch(item["id"])
            assert signature.owner_ods == "RM1", "signed by RM1, carried by MESH, verified at RGT"
            await self.centre.acknowledge(item["id"])
            taken.append(bundle)
            if item["event"] != "acknowledgement":
                await self.centre_sends(builders.acknowledgement(EVENT_SYSTEM, "RGT", NAMES["RGT"], bundle))
        return taken

    async def rm1_collects(self) -> list[dict[str, Any]]:
        """The bridge sends what RM1 is owed by MESH; RM1 reads and verifies it, then MESH tracking settles it."""
        await self.bridge.run_once()
        received = [r for r in await in_thread(self.rm1.receive) if r.kind == "message"]
        return await self._rm1_takes(received)

    async def _rm1_takes(self, received: list[Any]) -> list[dict[str, Any]]:
        for item in received:
            assert item.signer.owner_ods == "RGT", "signed by RGT, carried by MESH, verified at RM1"
        await asyncio.sleep(0.15)  # MESH tracking of what was sent is due again
        await self.bridge.run_once()  # acknowledged on MESH → delivered
        for item in received:
            if item.body["entry"][0]["resource"]["eventCoding"]["code"] != "acknowledgement":
                await self.rm1_sends(builders.acknowledgement(EVENT_SYSTEM, "RM1", NAMES["RM1"], item.body))
        return [item.body for item in received]

    async def state(self, story: Pathway) -> tuple[str, str]:
        token = self.hub.staff_token("governance")
        headers = {"Authorization": f"Bearer {token}"}
        url = f"{self.hub.base_url}/episodes?nhs-number={story.patient.nhs_number}"
        async with self.hub.session.get(url, headers=headers) as resp:
            [summary] = (await resp.json())["episodes"]
        async with self.hub.session.get(f"{self.hub.base_url}/episodes/{summary['id']}", headers=headers) as resp:
            episode = await resp.json()
        return episode["state"], episode["responsible"]["ods"]


async def test_a_trust_with_only_a_mesh_mailbox_completes_the_pathway_with_the_centre(
    mesh_hub: RunningHub, sandbox: MeshSandbox, bridge: MeshBridge
) -> None:
    story = story_for(701)
    p = Parties(mesh_hub, sandbox, bridge)

    await p.rm1_sends(story.referral())  # in by MESH
    assert [b["identifier"] for b in await p.centre_collects()] == [story.sent["referral"]["identifier"]]
    assert await p.state(story) == ("referred", "RM1")
    assert len(await p.rm1_collects()) == 1, "RGT's business acknowledgement, out by MESH"

    await p.centre_sends(story.outcome("accepted"))  # out by MESH
    [outcome] = await p.rm1_collects()
    assert outcome["identifier"] == story.sent["referral-outcome"]["identifier"]
    assert await p.state(story) == ("accepted", "RM1")
    await p.centre_collects()  # RM1's business acknowledgement, in by MESH

    await p.rm1_sends(story.transfer_to_centre())
    await p.centre_collects()
    await p.rm1_collects()
    await p.centre_sends(story.centre_answers())
    await p.rm1_collects()
    assert await p.state(story) == ("at-centre", "RGT")
    await p.centre_collects()

    await p.centre_sends(story.discharge_summary())
    await p.rm1_collects()
    assert await p.state(story) == ("discharge-summary-sent", "RGT")
    await p.centre_collects()

    await p.centre_sends(story.transfer_back())  # out by MESH
    await p.rm1_collects()
    await p.centre_collects()
    await p.rm1_sends(story.referrer_answers())  # in by MESH
    await p.centre_collects()
    await p.rm1_collects()
    assert await p.state(story) == ("closed", "RM1")

    conn = await asyncpg.connect(mesh_hub.dsn)
    try:
        deliveries = await conn.fetch(
            """
            SELECT d.recipient_ods, d.state, d.channel, m.event,
                   (SELECT count(*) FROM audit_events a WHERE a.message_id = m.id
                    AND a.event_type = 'message-delivered' AND a.outcome = 'delivered') AS delivered_events,
                   (SELECT count(*) FROM audit_events a WHERE a.message_id = m.id
                    AND a.event_type = 'message-accepted') AS accepted_events
            FROM deliveries d JOIN messages m ON m.id = d.message_id
            """
        )
        leftover = await conn.fetchval("SELECT count(*) FROM deliveries WHERE state <> 'delivered'")
    finally:
        await conn.close()
    assert leftover == 0, "every message delivered"
    to_rm1 = [row for row in deliveries if row["recipient_ods"] == "RM1"]
    assert {row["channel"] for row in to_rm1} == {"mesh"} and len(to_rm1) >= 6
    assert {row["channel"] for row in deliveries if row["recipient_ods"] == "RGT"} == {"mailbox"}
    assert all(row["accepted_events"] == 1 and row["delivered_events"] == 1 for row in deliveries), "all audited"
    assert await in_thread(sandbox.inbox, "HANDOVERHUB1") == []
    assert await in_thread(sandbox.inbox, "RM1MESH01") == []

    report = await verify_database(mesh_hub.dsn, mesh_hub.network.registry, [], p.receipts)
    assert report.ok, report.first.describe() if report.first else ""
    assert report.receipts == len(p.receipts) == len(deliveries)
