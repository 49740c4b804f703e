"""Stored payloads: bound to their rows (D2), re-wrapped by KEK rotation (D3), crypto-shredded at the end of
retention with metadata and audit kept (D4); rows from before encryption are sealed at start-up."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from service.crypto.kek import FileKeyring, read_kek_file
from service.crypto.retention import PayloadRetention, RetentionPolicy
from service.crypto.rotation import purge_retired_keks, rotate_kek
from service.crypto.vault import PayloadShreddedError, PayloadUnreadableError, PayloadVault, seal_legacy_payloads
from service.delivery.mailbox import Mailboxes
from service.store import db
from service.store.mailbox import fetch_payload
from tests.delivery.delivery_fixtures import World, outbox_world
from tests.support.hub import Network


async def stored(world: World, recipient: str, message_id: uuid.UUID):  # type: ignore[no-untyped-def]
    async with db.connection(world.pool) as conn:
        return await fetch_payload(conn, recipient, message_id)


@pytest.mark.parametrize("swap", ["ciphertext", "wrapped-key"])
async def test_d2_swapping_two_rows_payloads_fails_authentication(
    database: str, network: Network, tmp_path: Path, swap: str
) -> None:
    async with outbox_world(database, network, tmp_path) as world:
        a, b = await world.accept("RM1", "RGT"), await world.accept("RDE", "RGT")
        mailboxes = Mailboxes(world.pool, world.vault)
        assert await mailboxes.fetch("RGT", a.message_id) == a.body
        async with db.transaction(world.pool) as conn:
            if swap == "ciphertext":
                await conn.execute(
                    """
                    UPDATE messages m SET payload_ciphertext = o.payload_ciphertext, payload_nonce = o.payload_nonce
                    FROM messages o WHERE m.id = ANY($1::uuid[]) AND o.id = ANY($1::uuid[]) AND o.id <> m.id
                    """,
                    [a.message_id, b.message_id],
                )
            else:
                await conn.execute(
                    """
                    UPDATE data_keys k SET wrapped_key = o.wrapped_key FROM data_keys o
                    WHERE k.message_id = ANY($1::uuid[]) AND o.message_id = ANY($1::uuid[])
                      AND o.message_id <> k.message_id
                    """,
                    [a.message_id, b.message_id],
                )
        for sent in (a, b):
            with pytest.raises(PayloadUnreadableError):
                await world.vault.open(await stored(world, "RGT", sent.message_id))


async def test_d2_editing_a_rows_sender_fails_authentication(database: str, network: Network, tmp_path: Path) -> None:
    async with outbox_world(database, network, tmp_path) as world:
        sent = await world.accept("RM1", "RGT")
        async with db.transaction(world.pool) as conn:
            await conn.execute("UPDATE messages SET sender_ods = 'RDE' WHERE id = $1", sent.message_id)
        with pytest.raises(PayloadUnreadableError):
            await world.vault.open(await stored(world, "RGT", sent.message_id))


async def test_d3_kek_rotation_rewraps_every_data_key_and_everything_still_decrypts(
    database: str, network: Network, tmp_path: Path
) -> None:
    async with outbox_world(database, network, tmp_path) as world:
        sent = [await world.accept("RM1", "RGT") for _ in range(5)]
        old = world.vault.kek.kek_id
        ciphertexts = await world.fetch("SELECT id, payload_ciphertext FROM messages ORDER BY id")
        report = await rotate_kek(world.kek_file, world.pool, clock=world.clock)
        assert report.retired_kek_ids == (old,) and report.rewrapped == 5
        assert {r["kek_id"] for r in await world.fetch("SELECT kek_id FROM data_keys")} == {report.new_kek_id}
        assert await world.fetch("SELECT id, payload_ciphertext FROM messages ORDER BY id") == ciphertexts, (
            "payloads are not re-encrypted, only their keys re-wrapped"
        )
        later = await world.accept("RM1", "RGT")  # the running vault wraps under the new KEK at once
        purged = await purge_retired_keks(world.kek_file, world.pool, clock=world.clock)
        assert purged.removed_kek_ids == (old,) and purged.kept_kek_ids == ()
        assert set(read_kek_file(world.kek_file)[1]) == {report.new_kek_id}
        fresh = PayloadVault(FileKeyring(world.kek_file))
        for s in [*sent, later]:
            assert await fresh.open(await stored(world, "RGT", s.message_id)) == s.body
        events = await world.fetch("SELECT outcome, leaf FROM audit_events WHERE event_type = 'key-changed'")
        assert [e["outcome"] for e in events] == ["rotated"]
        assert json.loads(events[0]["leaf"])["details"]["kid"] == report.new_kek_id


async def test_d4_retention_shreds_delivered_payloads_per_type_and_keeps_metadata_and_audit(
    database: str, network: Network, tmp_path: Path
) -> None:
    async with outbox_world(database, network, tmp_path) as world:
        delivered = await world.accept("RM1", "RGT")
        pending = await world.accept("RDE", "RGT")
        mailboxes = Mailboxes(world.pool, world.vault, world.clock)
        await mailboxes.acknowledge("RGT", delivered.message_id)
        audit_before = await world.fetch("SELECT seq, leaf_hash FROM audit_events ORDER BY seq")
        retention = PayloadRetention(world.pool, RetentionPolicy.parse("referral=2d,*=30d"), clock=world.clock)
        world.clock.advance(timedelta(days=1))
        assert await retention.shred_expired() == 0, "not yet"
        world.clock.advance(timedelta(days=2))  # acknowledged "now()" by the database, so comfortably past 2 days
        assert await retention.shred_expired() == 1
        assert await retention.shred_expired() == 0
        row = (await world.fetch("SELECT * FROM messages WHERE id = $1", delivered.message_id))[0]
        assert row["payload_ciphertext"] is None and row["payload_shredded_at"] == world.clock()
        assert (row["sender_ods"], row["bundle_identifier"], row["payload_sha256"]) != (None, None, None)
        assert await world.fetch("SELECT * FROM data_keys WHERE message_id = $1", delivered.message_id) == []
        with pytest.raises(PayloadShreddedError):
            await world.vault.open(await stored(world, "RGT", delivered.message_id))
        assert await mailboxes.fetch("RGT", delivered.message_id) is None
        assert await mailboxes.fetch("RGT", pending.message_id) == pending.body, "pending payloads are kept"
        audit_after = await world.fetch("SELECT seq, leaf_hash, event_type, outcome FROM audit_events ORDER BY seq")
        assert [(r["seq"], r["leaf_hash"]) for r in audit_after[: len(audit_before)]] == [
            (r["seq"], r["leaf_hash"]) for r in audit_before
        ], "the audit log is kept as it was"
        assert (audit_after[-1]["event_type"], audit_after[-1]["outcome"]) == ("payload-shredded", "shredded")


def test_d4_retention_policy_format() -> None:
    assert RetentionPolicy.parse("30d") == RetentionPolicy(timedelta(days=30), {})
    policy = RetentionPolicy.parse("referral=90d, discharge-summary=12h ,*=7d")
    assert policy.retention_for("referral") == timedelta(days=90)
    assert policy.retention_for("discharge-summary") == timedelta(hours=12)
    assert policy.retention_for("acknowledgement") == timedelta(days=7)
    for bad in ("30", "30y", "0d", "referral", "referral=1d,referral=2d", "Referral=1d", "=1d"):
        with pytest.raises(ValueError, match="retention"):
            RetentionPolicy.parse(bad)


async def test_rows_stored_in_plaintext_before_encryption_are_sealed(
    database: str, network: Network, tmp_path: Path
) -> None:
    async with outbox_world(database, network, tmp_path) as world:
        sent = await world.accept("RM1", "RGT")
        async with db.transaction(world.pool) as conn:  # as a row written before migration 0003 looked
            await conn.execute("ALTER TABLE messages DROP CONSTRAINT messages_no_plaintext_payload")
            await conn.execute("DELETE FROM data_keys")
            await conn.execute(
                """UPDATE messages SET payload = $1, payload_ciphertext = NULL, payload_nonce = NULL,
                   payload_aad_version = NULL""",
                sent.body,
            )
            await conn.execute(
                "ALTER TABLE messages ADD CONSTRAINT messages_no_plaintext_payload CHECK (payload IS NULL) NOT VALID"
            )
        assert await seal_legacy_payloads(world.pool, world.vault) == 1
        row = (await world.fetch("SELECT payload, payload_ciphertext FROM messages"))[0]
        assert row["payload"] is None and sent.body not in bytes(row["payload_ciphertext"])
        assert await world.vault.open(await stored(world, "RGT", sent.message_id)) == sent.body
        async with db.transaction(world.pool) as conn:
            with pytest.raises(Exception, match="messages_no_plaintext_payload"):
                await conn.execute("UPDATE messages SET payload = 'plain'")
