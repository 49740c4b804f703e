"""T2 to T4: changes made to history as a database superuser (triggers bypassed) are found by
`handover audit verify`, against the hub's own signed checkpoints or checkpoints a trust kept."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from service.auditlog import merkle, verifier
from service.auditlog.events import AuditEvent, EventType
from service.auditlog.log_check import VerifyReport
from service.auditlog.merkle_tree import MerkleTree
from service.auditlog.verify_cli import verify_database
from service.store import audit_reads
from service.store.checkpoints import StoredCheckpoint
from tests.auditlog.audit_fixtures import T0, append_events, sign_checkpoint, superuser
from tests.support.databases import DatabaseFactory, with_database
from tests.support.hub import Network

FORGED = AuditEvent(EventType.MESSAGE_ACCEPTED, "accepted", "RDE", T0, uuid.uuid4(), {"payload_sha256": "0" * 64})


async def verify(dsn: str, network: Network, *trusted: StoredCheckpoint) -> VerifyReport:
    return await verify_database(dsn, network.registry, [(f"trusted {c.tree_size}", c.note) for c in trusted], [])


async def logged_and_checkpointed(dsn: str, network: Network, count: int = 6) -> StoredCheckpoint:
    await append_events(dsn, count)
    checkpoint = await sign_checkpoint(dsn, network)
    report = await verify(dsn, network)
    assert report.ok and report.tree_size == count, report.divergences
    return checkpoint


async def test_t2_edited_leaf_with_a_matching_hash_is_a_root_mismatch(database: str, network: Network) -> None:
    await logged_and_checkpointed(database, network)
    async with superuser(database) as conn:
        await conn.execute(
            "UPDATE audit_events SET leaf = $1, leaf_hash = $2 WHERE seq = 2",
            FORGED.leaf(),
            merkle.hash_leaf(FORGED.leaf()),
        )
    report = await verify(database, network)
    assert report.first is not None
    assert (report.first.kind, report.first.index) == ("checkpoint-root", 6)
    assert "checkpoint 6" in report.first.expected and "recomputed" in report.first.found


async def test_t2_edited_leaf_alone_is_reported_at_its_index(database: str, network: Network) -> None:
    await logged_and_checkpointed(database, network)
    async with superuser(database) as conn:
        await conn.execute("UPDATE audit_events SET leaf = $1 WHERE seq = 4", FORGED.leaf())
    report = await verify(database, network)
    assert report.first is not None and (report.first.kind, report.first.index) == ("leaf-hash", 4)
    assert {d.kind for d in report.divergences} == {"leaf-hash", "checkpoint-root"}


@pytest.mark.parametrize("deleted", [1, 3])
async def test_t2_deleting_the_last_entries_is_found(database: str, network: Network, deleted: int) -> None:
    await logged_and_checkpointed(database, network)
    async with superuser(database) as conn:
        await conn.execute("DELETE FROM audit_events WHERE seq >= $1", 6 - deleted)
    report = await verify(database, network)
    assert report.first is not None and report.first.kind == "log-shorter-than-checkpoint"
    assert report.first.index == 6 and report.first.found == str(6 - deleted)


async def test_t2_deleting_the_last_entries_and_appending_others_is_a_root_mismatch(
    database: str, network: Network
) -> None:
    await logged_and_checkpointed(database, network)
    async with superuser(database) as conn:
        await conn.execute("DELETE FROM audit_events WHERE seq >= 4")
    await append_events(database, 2, first=100)  # the log is back to 6 entries, but not the same ones
    report = await verify(database, network)
    assert report.first is not None and (report.first.kind, report.first.index) == ("checkpoint-root", 6)


async def test_t2_reordering_entries_is_a_root_mismatch(database: str, network: Network) -> None:
    await logged_and_checkpointed(database, network)
    async with superuser(database) as conn:
        await conn.execute("UPDATE audit_events SET seq = 1000 WHERE seq = 1")
        await conn.execute("UPDATE audit_events SET seq = 1 WHERE seq = 3")
        await conn.execute("UPDATE audit_events SET seq = 3 WHERE seq = 1000")
    report = await verify(database, network)
    assert report.first is not None and (report.first.kind, report.first.index) == ("checkpoint-root", 6)
    assert "entries 0..5" in report.first.detail


async def test_t2_a_gap_in_the_indexes_is_found(database: str, network: Network) -> None:
    await logged_and_checkpointed(database, network)
    async with superuser(database) as conn:
        await conn.execute("DELETE FROM audit_events WHERE seq = 2")
    report = await verify(database, network)
    assert report.first is not None and (report.first.kind, report.first.index) == ("missing-entry", 2)


async def test_t2_a_forged_or_edited_checkpoint_is_found(database: str, network: Network) -> None:
    checkpoint = await logged_and_checkpointed(database, network)
    async with superuser(database) as conn:
        await conn.execute("UPDATE audit_checkpoints SET note = replace(note, $1, $2)", "\n6\n", "\n5\n")
    report = await verify(database, network)
    assert report.first is not None and report.first.kind == "checkpoint-signature"
    async with superuser(database) as conn:
        await conn.execute(
            "UPDATE audit_checkpoints SET note = $1, root_hash = $2", checkpoint.note, merkle.hash_leaf(b"x")
        )
    report = await verify(database, network)
    assert report.first is not None and report.first.kind == "checkpoint-record"


async def test_t3_history_rewritten_and_re_signed_fails_against_a_trust_held_checkpoint(
    database: str, network: Network
) -> None:
    await append_events(database, 4)
    held_early = await sign_checkpoint(database, network)  # trust A keeps size 4
    await append_events(database, 4, first=4)
    held_late = await sign_checkpoint(database, network)  # trust B keeps size 8

    # The insider, holding the hub key, rewrites entry 1, drops the checkpoints and re-signs a clean history.
    async with superuser(database) as conn:
        await conn.execute(
            "UPDATE audit_events SET leaf = $1, leaf_hash = $2 WHERE seq = 1",
            FORGED.leaf(),
            merkle.hash_leaf(FORGED.leaf()),
        )
        await conn.execute("DELETE FROM audit_checkpoints")
    await append_events(database, 2, first=8)
    await sign_checkpoint(database, network)

    alone = await verify(database, network)
    assert alone.ok, "internally consistent: only an earlier checkpoint held elsewhere can show the rewrite"
    for held in (held_early, held_late):
        report = await verify(database, network, held)
        assert report.first is not None and (report.first.kind, report.first.index) == (
            "checkpoint-root",
            held.tree_size,
        )
        assert f"trusted {held.tree_size}" in report.first.expected

    # The same split view as a trust sees it online: no consistency proof from its checkpoint to the new one.
    conn = await asyncpg.connect(database)
    try:
        tree = MerkleTree()
        for leaf in await audit_reads.read_leaves(conn, 0, 10):
            tree.append(leaf.leaf_hash)
    finally:
        await conn.close()
    proof = tree.consistency_proof(held_early.tree_size, tree.size)
    assert not verifier.verify_consistency(held_early.tree_size, tree.size, held_early.root_hash, tree.root(), proof)


@asynccontextmanager
async def backup_of(databases: DatabaseFactory, dsn: str) -> AsyncIterator[str]:
    """A copy of the database as it is now (CREATE DATABASE … TEMPLATE), as a backup would be."""
    name = f"handover_backup_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(with_database(databases.server_dsn, "postgres"))
    try:
        source = dsn.rsplit("/", 1)[1].split("?", maxsplit=1)[0]
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
        yield with_database(databases.server_dsn, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_t4_restoring_an_older_backup_is_found_by_a_witnessed_checkpoint(
    database: str, network: Network, databases: DatabaseFactory
) -> None:
    await logged_and_checkpointed(database, network, count=3)
    async with backup_of(databases, database) as backup:
        await append_events(database, 3, first=3)
        witnessed = await sign_checkpoint(database, network)  # a trust keeps the size-6 checkpoint
        assert (await verify(database, network, witnessed)).ok

        restored = await verify(backup, network)
        assert restored.ok and restored.tree_size == 3, "the backup is consistent in itself"
        report = await verify(backup, network, witnessed)
        assert report.first is not None and report.first.kind == "log-shorter-than-checkpoint"
        assert (report.first.index, report.first.found) == (6, "3")
