"""Unread payload shredded (hazard log HAZ-12): retention never crypto-shreds a payload its recipient did not
read (no delivery succeeded, no acknowledgement came), and the audit log says it was kept, once; a payload that
was read is shredded as before, its audit event saying how it was read. Real PostgreSQL, real relay, real KEK."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from service.crypto.retention import PayloadRetention, RetentionPolicy
from service.delivery.mailbox import Mailboxes
from service.store import db
from service.store.mailbox import fetch_payload
from tests.delivery.delivery_fixtures import outbox_world
from tests.support.hub import Network


async def test_unread_payload_is_kept_past_retention_and_the_audit_log_says_so(
    database: str, network: Network, tmp_path: Path
) -> None:
    async with outbox_world(database, network, tmp_path) as world:
        read = await world.accept("RM1", "RGT")
        unread = await world.accept("RGT", "RDE")  # RDE is pull-only and never fetches it
        mailboxes = Mailboxes(world.pool, world.vault, world.clock)
        await mailboxes.acknowledge("RGT", read.message_id)
        world.clock.advance(timedelta(days=5, hours=1))
        await world.relay({}).run_once()
        assert (await world.delivery(unread.message_id))["state"] == "dead_letter", "never delivered"

        retention = PayloadRetention(world.pool, RetentionPolicy.parse("1d"), clock=world.clock)
        world.clock.advance(timedelta(days=3))
        assert await retention.shred_expired() == 1, "only the payload that was read"
        assert await retention.shred_expired() == 0

        async with db.connection(world.pool) as conn:
            kept = await fetch_payload(conn, "RDE", unread.message_id)
        assert await world.vault.open(kept) == unread.body, "the unread payload is still there, readable"
        [row] = await world.fetch(
            "SELECT payload_shredded_at, payload_kept_unread_at FROM messages WHERE id = $1", unread.message_id
        )
        assert row["payload_shredded_at"] is None and row["payload_kept_unread_at"] is not None
        [shredded] = await world.fetch("SELECT payload_shredded_at FROM messages WHERE id = $1", read.message_id)
        assert shredded["payload_shredded_at"] is not None

        events = {
            (r["message_id"], r["outcome"]): json.loads(bytes(r["leaf"]))
            for r in await world.fetch(
                "SELECT message_id, outcome, leaf FROM audit_events WHERE outcome IN ('kept-unread', 'shredded')"
            )
        }
        outcomes = sorted(
            outcome for message_id, outcome in events if message_id in (read.message_id, unread.message_id)
        )
        assert outcomes == ["kept-unread", "shredded"], "one event each, however often retention runs"
        assert "never delivered or acknowledged" in json.dumps(events[(unread.message_id, "kept-unread")])
        assert "delivered" in json.dumps(events[(read.message_id, "shredded")])
