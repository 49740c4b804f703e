"""MESH inbound against NHS England's MESH sandbox (a real process) with the official mesh-client on both sides:
a signed message sent by MESH goes through the same intake as HTTP, its receipt or refusal goes back by MESH,
and the MESH message is acknowledged only once its outcome is durable."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from urllib.parse import urlsplit

import pytest

from service.identity.signing import verify_bundle_signature
from service.meshbridge.bridge import MeshBridge, open_bridge
from service.meshbridge.inbound import Outcome, request_id_for
from tests.delivery.test_relay_crash import via
from tests.support.faultproxy import FaultProxy
from tests.support.hub import RunningHub
from tests.support.mesh import (
    HUB_MAILBOX,
    MAILBOXES,
    UNREGISTERED,
    MeshSandbox,
    audit_events,
    count,
    in_thread,
    mesh_trust,
)
from tests.support.messages import error_codes, referral

INBOUND_LOGGER = "handover.mesh"


async def test_a_referral_sent_by_mesh_is_accepted_receipted_by_mesh_and_verifies_when_pulled(
    mesh_hub: RunningHub, sandbox: MeshSandbox, bridge: MeshBridge
) -> None:
    rm1 = mesh_trust(sandbox, mesh_hub.network, "RM1")
    signed = rm1.sign(referral("RM1", "RGT"))
    mesh_id = await in_thread(rm1.send, signed)

    [handled] = await bridge.inbound.poll_once()
    assert handled.outcome is Outcome.ACCEPTED
    assert await in_thread(sandbox.inbox, HUB_MAILBOX) == [], "acknowledged after the commit"

    [reply] = await in_thread(rm1.receive)  # the receipt's hub signature and digest are checked in receive()
    assert (reply.kind, reply.workflow_id, reply.in_reply_to) == ("receipt", "HANDOVER_RECEIPT", mesh_id)
    assert reply.signer is not None and reply.signer.owner_ods == "hub"

    # The signature is over the FHIR message, not the transport: the centre pulls it and it verifies as RM1's.
    centre = mesh_hub.trust("RGT")
    [item] = await centre.inbox()
    bundle, signature = await centre.fetch(item["id"])
    assert signature.owner_ods == "RM1"
    assert bundle["identifier"] == signed["identifier"]
    assert verify_bundle_signature(bundle, mesh_hub.network.registry.key).owner_ods == "RM1"
    audit = await audit_events(mesh_hub.dsn, item["id"])
    kind, outcome, leaf = audit[0]
    assert (kind, outcome) == ("message-accepted", "accepted")
    assert str(request_id_for(MAILBOXES["RM1"], mesh_id)) in json.dumps(leaf), "keyed by the MESH message id"


async def test_a_message_from_a_mailbox_that_is_not_the_signers_is_refused_and_reported_back(
    mesh_hub: RunningHub, sandbox: MeshSandbox, bridge: MeshBridge
) -> None:
    # RM1 signs; it reaches the hub from RDE's mailbox.
    impostor = mesh_trust(sandbox, mesh_hub.network, "RM1", mailbox=MAILBOXES["RDE"])
    mesh_id = await in_thread(impostor.send, impostor.sign(referral("RM1", "RGT")))

    [handled] = await bridge.inbound.poll_once()
    assert (handled.outcome, handled.code and handled.code.value) == (Outcome.REFUSED, "sender-mismatch")
    [reply] = await in_thread(impostor.receive)
    assert (reply.kind, reply.workflow_id, reply.in_reply_to) == ("outcome", "HANDOVER_OUTCOME", mesh_id)
    assert error_codes(reply.body)[0] == "sender-mismatch"
    assert await count(mesh_hub.dsn, "SELECT count(*) FROM messages") == 0, "nothing stored"
    refusals = await count(
        mesh_hub.dsn, "SELECT count(*) FROM audit_events WHERE event_type = 'message-refused' AND actor = 'RDE'"
    )
    assert refusals == 1, "but the refusal's audit event"
    assert await in_thread(sandbox.inbox, HUB_MAILBOX) == []


async def test_a_message_from_an_unregistered_mailbox_is_refused_and_reported_back(
    mesh_hub: RunningHub, sandbox: MeshSandbox, bridge: MeshBridge
) -> None:
    stranger = mesh_trust(sandbox, mesh_hub.network, "RM1", mailbox=UNREGISTERED)
    await in_thread(stranger.send, stranger.sign(referral("RM1", "RGT")))
    [handled] = await bridge.inbound.poll_once()
    assert handled.outcome is Outcome.REFUSED
    [reply] = await in_thread(stranger.receive)
    assert error_codes(reply.body)[0] == "unauthenticated"
    assert await count(mesh_hub.dsn, "SELECT count(*) FROM messages") == 0


async def test_a_tampered_message_by_mesh_is_refused_with_the_same_code_as_over_http(
    mesh_hub: RunningHub, sandbox: MeshSandbox, bridge: MeshBridge
) -> None:
    rm1 = mesh_trust(sandbox, mesh_hub.network, "RM1")
    signed = rm1.sign(referral("RM1", "RGT"))
    signed["entry"][1]["resource"]["id"] = "tampered-after-signing"
    await in_thread(rm1.send, signed)
    [handled] = await bridge.inbound.poll_once()
    assert handled.outcome is Outcome.REFUSED
    [reply] = await in_thread(rm1.receive)
    assert error_codes(reply.body)[0] == "signature-invalid"


async def test_duplicate_mesh_delivery_is_accepted_once_and_answered_with_the_original_receipt(
    mesh_hub: RunningHub, sandbox: MeshSandbox, bridge: MeshBridge, caplog: pytest.LogCaptureFixture
) -> None:
    """The bridge dies after the commit, before acknowledging: MESH delivers the message again. The log says
    which happened: accepted the first time, replayed (the original receipt) the second (issue 26 item 6)."""
    caplog.set_level(logging.INFO, logger=INBOUND_LOGGER)
    rm1 = mesh_trust(sandbox, mesh_hub.network, "RM1")
    signed = rm1.sign(referral("RM1", "RGT"))
    mesh_id = await in_thread(rm1.send, signed)

    first = await bridge.inbound.read_and_answer(mesh_id, acknowledge=False)  # the crash: committed, not acknowledged
    assert first.outcome is Outcome.ACCEPTED
    assert await in_thread(sandbox.inbox, HUB_MAILBOX) == [mesh_id], "still in the inbox"

    [again] = await bridge.inbound.poll_once()
    assert again.outcome is Outcome.REPLAYED and again.reply == first.reply, "the original receipt"
    said = [r.getMessage() for r in caplog.records if r.name == INBOUND_LOGGER and r.getMessage().startswith("MESH")]
    assert said == ["MESH message accepted", "MESH message replayed"], said
    assert await count(mesh_hub.dsn, "SELECT count(*) FROM messages WHERE sender_ods = 'RM1'") == 1, "one acceptance"
    key = await count(
        mesh_hub.dsn,
        "SELECT count(*) FROM idempotency_keys WHERE sender_ods = 'RM1' AND request_id = $1",
        request_id_for(MAILBOXES["RM1"], mesh_id),
    )
    assert key == 1
    receipts = await in_thread(rm1.receive)
    assert [r.kind for r in receipts] == ["receipt", "receipt"] and receipts[0].body == receipts[1].body

    # The trust itself sending the same message again (a new MESH message) is not accepted twice either.
    await in_thread(rm1.send, signed)
    [resent] = await bridge.inbound.poll_once()
    assert (resent.outcome, resent.code and resent.code.value) == (Outcome.REFUSED, "duplicate-message")
    assert await count(mesh_hub.dsn, "SELECT count(*) FROM messages WHERE sender_ods = 'RM1'") == 1


async def test_nothing_is_acknowledged_while_the_database_is_down_and_the_message_is_taken_when_it_is_back(
    mesh_hub: RunningHub, sandbox: MeshSandbox
) -> None:
    parts = urlsplit(mesh_hub.dsn)
    async with (
        FaultProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as db_proxy,
        open_bridge(mesh_hub.settings, sandbox.settings(HUB_MAILBOX), via(mesh_hub.dsn, db_proxy.port)) as bridge,
    ):
        rm1 = mesh_trust(sandbox, mesh_hub.network, "RM1")
        mesh_id = await in_thread(rm1.send, rm1.sign(referral("RM1", "RGT")))
        db_proxy.reset(refuse=True)  # the bridge's database connections die and new ones are refused
        await bridge.run_once()  # logged, not raised: the bridge keeps running
        assert await in_thread(sandbox.inbox, HUB_MAILBOX) == [mesh_id], "not acknowledged: nothing is durable"
        assert await in_thread(rm1.receive) == [], "and nothing answered"

        db_proxy.heal()
        db_proxy.refuse = False
        [handled] = await bridge.inbound.poll_once()
        assert handled.outcome is Outcome.ACCEPTED
        assert await in_thread(sandbox.inbox, HUB_MAILBOX) == []
        assert [r.kind for r in await in_thread(rm1.receive)] == ["receipt"]
        assert await count(mesh_hub.dsn, "SELECT count(*) FROM messages") == 1


async def test_a_message_over_the_hubs_size_limit_is_refused_and_reported_back(
    mesh_hub: RunningHub, sandbox: MeshSandbox
) -> None:
    small = replace(mesh_hub.settings, max_body_bytes=2048)
    async with open_bridge(small, sandbox.settings(HUB_MAILBOX), mesh_hub.dsn) as bridge:
        rm1 = mesh_trust(sandbox, mesh_hub.network, "RM1")
        await in_thread(rm1.send, rm1.sign(referral("RM1", "RGT")))
        [handled] = await bridge.inbound.poll_once()
        assert (handled.outcome, handled.code and handled.code.value) == (Outcome.REFUSED, "payload-too-large")
        [reply] = await in_thread(rm1.receive)
        assert error_codes(reply.body)[0] == "payload-too-large"
        assert await count(mesh_hub.dsn, "SELECT count(*) FROM messages") == 0
