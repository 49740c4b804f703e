"""Failures: a 4xx refusal dead-letters at once (F10), 429/503 Retry-After is honoured (F11), and a recipient
down for the whole delivery window gets the message dead-lettered with exactly one report (F12). Every dead
letter sends the original sender a hub-signed non-delivery acknowledgement."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from service.delivery.backoff import backoff_ceiling
from service.delivery.mailbox import Mailboxes
from service.identity.signing import verify_bundle_signature
from tests.delivery.delivery_fixtures import outbox_world, recipients
from tests.support.hub import Network


@pytest.mark.parametrize("status", [400, 403, 404, 422])
async def test_f10_a_refusal_dead_letters_after_one_attempt_and_others_keep_flowing(
    database: str, network: Network, tmp_path: Path, status: int
) -> None:
    async with outbox_world(database, network, tmp_path) as world, recipients(network, "RGT", "RM1") as (rgt, rm1):
        rgt.refuse_with(status)
        refused = await world.accept("RM1", "RGT")
        other = await world.accept("RGT", "RM1")
        relay = world.relay({"RGT": rgt.endpoint, "RM1": rm1.endpoint})
        await relay.run_once()
        row = await world.delivery(refused.message_id)
        assert (row["state"], row["attempts"], row["last_status"]) == ("dead_letter", 1, status)
        assert (await world.delivery(other.message_id))["state"] == "delivered", "others keep flowing"
        [report] = await world.reports()
        assert (report["dead_message_id"], report["reason"]) == (refused.message_id, "recipient-refused")
        assert (report["report_sender"], report["report_recipient"], report["report_event"]) == (
            "hub",
            "RM1",
            "acknowledgement",
        )
        await relay.run_once()  # RM1 has an endpoint: the report is pushed to it as well
        assert len(rm1.requests) == 2 and rgt.requests[0].status == status and len(rgt.requests) == 1
        await world.check_inv1()
        await world.check_inv2(rgt, exactly=set())


async def test_the_report_is_a_signed_fatal_error_acknowledgement_in_the_senders_mailbox(
    database: str, network: Network, tmp_path: Path
) -> None:
    async with outbox_world(database, network, tmp_path) as world, recipients(network, "RGT") as (rgt,):
        rgt.refuse_with(422)
        refused = await world.accept("RM1", "RGT")
        await world.relay({"RGT": rgt.endpoint}).run_once()
        mailboxes = Mailboxes(world.pool, world.vault)
        [item] = await mailboxes.pending("RM1")
        assert (item.sender_ods, item.event) == ("hub", "acknowledgement")
        body = await mailboxes.fetch("RM1", item.message_id)
        assert body is not None
        report = json.loads(body)
        assert verify_bundle_signature(report, network.registry.hub_key).owner_ods == "hub"
        header, outcome = (entry["resource"] for entry in report["entry"])
        original = json.loads(refused.body)
        assert header["eventCoding"]["code"] == "acknowledgement"
        assert header["destination"][0]["receiver"]["identifier"]["value"] == "RM1"
        assert header["response"]["identifier"] == original["entry"][0]["resource"]["id"]
        assert header["response"]["code"] == "fatal-error"
        assert header["response"]["details"]["reference"] == f"urn:uuid:{outcome['id']}"
        codes = [c["code"] for c in outcome["issue"][0]["details"]["coding"]]
        assert codes == ["undeliverable", "REC_TIMEOUT"]
        text = outcome["issue"][0]["details"]["text"]
        assert refused.bundle_identifier in text and "RGT" in text and "HTTP 422" in text
        patient = original["entry"][2]["resource"]
        for value in (patient["identifier"][0]["value"], patient["name"][0]["family"]):
            assert value not in body.decode(), "D6: the report never echoes payload values"


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_f11_retry_after_is_honoured(
    database: str, network: Network, tmp_path: Path, status: int, form: str
) -> None:
    async with outbox_world(database, network, tmp_path) as world, recipients(network, "RGT") as (rgt,):
        now = world.clock()
        retry_after = "120" if form == "seconds" else format_datetime(now + timedelta(seconds=120), usegmt=True)
        rgt.refuse_with(status, retry_after=retry_after, times=1)
        sent = await world.accept()
        relay = world.relay({"RGT": rgt.endpoint})
        await relay.run_once()
        row = await world.delivery(sent.message_id)
        assert (row["state"], row["last_status"]) == ("pending", status)
        assert row["next_attempt_at"] >= now + timedelta(seconds=119), "not before Retry-After"
        world.clock.advance(timedelta(seconds=100))
        assert await relay.run_once() == 0, "nothing is attempted before Retry-After"
        world.clock.advance(timedelta(seconds=21))
        await relay.run_once()
        assert (await world.delivery(sent.message_id))["state"] == "delivered"
        assert [r.status for r in rgt.requests] == [status, 200]
        await world.check_inv1()
        await world.check_inv2(rgt, exactly={sent.bundle_identifier})


async def test_f12_recipient_down_for_five_days_dead_letters_once_with_one_report(
    database: str, network: Network, tmp_path: Path
) -> None:
    async with outbox_world(database, network, tmp_path) as world, recipients(network, "RGT") as (rgt,):
        rgt.refuse_with(503)
        sent = await world.accept()
        started = world.clock()
        relays = [world.relay({"RGT": rgt.endpoint}, seed=seed) for seed in (1, 2)]
        attempts_seen = 0
        while world.clock() - started < timedelta(days=5, minutes=30):
            await asyncio.gather(*(relay.run_once() for relay in relays))  # two relays sweep at the same time
            row = await world.delivery(sent.message_id)
            if row["state"] == "pending":
                assert row["next_attempt_at"] - world.clock() <= backoff_ceiling(row["attempts"]), "backoff schedule"
                attempts_seen = row["attempts"]
            world.clock.advance(timedelta(minutes=15))
        row = await world.delivery(sent.message_id)
        assert row["state"] == "dead_letter" and row["dead_lettered_at"] >= started + timedelta(days=5)
        assert attempts_seen > 400, "kept trying every <=15 min for 5 days"
        [report] = await world.reports()
        assert report["reason"] == "delivery-window-expired"
        for relay in relays:
            await relay.run_once()
        assert len(await world.reports()) == 1, "exactly once"
        events = await world.fetch(
            "SELECT event_type, outcome FROM audit_events WHERE message_id = $1 ORDER BY seq", sent.message_id
        )
        assert [(e["event_type"], e["outcome"]) for e in events] == [
            ("message-accepted", "accepted"),
            ("message-dead-lettered", "dead-letter"),
        ]
        await world.check_inv1()
        await world.check_inv2(rgt, exactly=set())


async def test_f12_an_unfetched_mailbox_message_dead_letters_after_the_window_too(
    database: str, network: Network, tmp_path: Path
) -> None:
    async with outbox_world(database, network, tmp_path) as world:
        sent = await world.accept("RGT", "RDE")  # RDE is pull-only and never acknowledges
        relay = world.relay({})
        world.clock.advance(timedelta(days=4, hours=23))
        await relay.run_once()
        assert (await world.delivery(sent.message_id))["state"] == "pending"
        world.clock.advance(timedelta(hours=2))
        await relay.run_once()
        assert (await world.delivery(sent.message_id))["state"] == "dead_letter"
        [report] = await world.reports()
        assert report["report_recipient"] == "RGT"
        assert await Mailboxes(world.pool, world.vault).acknowledge("RDE", sent.message_id) is None, "too late"
        await world.check_inv1()
