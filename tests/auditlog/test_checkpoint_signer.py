"""The checkpoint signer: when it signs, that it never forks a size, that times only grow, and F4 (a crash or
kill -9 between appending, updating the tree and signing leaves no gap and no conflicting checkpoint)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from service.auditlog import merkle
from service.auditlog.appending import append_event
from service.auditlog.checkpoints import CheckpointSigner
from service.auditlog.tree import AuditIntegrityError, AuditTree
from service.auditlog.verify_cli import verify_database
from service.identity.notes import NoteSigner, log_origin
from service.store import checkpoints as checkpoint_store
from service.store import db
from service.store.checkpoints import ConflictingCheckpointError, StoredCheckpoint
from tests.auditlog.audit_fixtures import T0, append_events, event, note_signer, pool_for, sign_checkpoint, superuser
from tests.support.hub import Network

ROOT = Path(__file__).resolve().parents[2]


class SimulatedCrash(BaseException):
    """Stands for the process dying: nothing after it runs, the transaction is never committed."""


class CrashingSigner(NoteSigner):
    def sign(self, tree_size: int, root: bytes) -> str:
        raise SimulatedCrash


async def append_in_one_transaction(dsn: str, count: int, first: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            for number in range(first, first + count):
                await append_event(conn, event(number))
    finally:
        await conn.close()


async def assert_log_whole(dsn: str, network: Network) -> list[StoredCheckpoint]:
    """No gap in the indexes, every stored checkpoint's root recomputes, the offline verifier agrees."""
    conn = await asyncpg.connect(dsn)
    try:
        count, top = await conn.fetchrow("SELECT count(*), coalesce(max(seq), -1) FROM audit_events")
        assert count == top + 1
        stored = await checkpoint_store.all_checkpoints(conn)
        tree = await AuditTree.load(conn)  # raises if a stored root differs from the recomputed one
    finally:
        await conn.close()
    assert len({c.tree_size for c in stored}) == len(stored)
    assert all(tree.tree.root(c.tree_size) == c.root_hash for c in stored)
    report = await verify_database(dsn, network.registry, [], [])
    assert report.ok, report.divergences
    return stored


async def test_the_first_checkpoint_is_signed_at_once_even_for_an_empty_log(database: str, network: Network) -> None:
    async with pool_for(database) as pool:
        signer = CheckpointSigner(pool, AuditTree(), note_signer(network), interval_seconds=3600)
        first = await signer.sign_if_due()
        assert first is not None and (first.tree_size, first.root_hash) == (0, merkle.EMPTY_ROOT)
        assert await signer.sign_if_due(force=True) is None  # nothing new: nothing to sign


async def test_a_new_checkpoint_waits_for_the_interval_or_1000_entries(database: str, network: Network) -> None:
    async with pool_for(database) as pool:
        signer = CheckpointSigner(pool, AuditTree(), note_signer(network), interval_seconds=3600)
        assert await signer.sign_if_due() is not None
        await append_in_one_transaction(database, 999, 0)
        assert await signer.sign_if_due() is None
        await append_in_one_transaction(database, 1, 999)
        stored = await signer.sign_if_due()
        assert stored is not None and stored.tree_size == 1000

        impatient = CheckpointSigner(pool, AuditTree(), note_signer(network), interval_seconds=1e-6)
        await append_events(database, 1, first=1000)
        assert await impatient.sign_if_due() is not None  # first run of a (re)started signer: due at once
        await append_events(database, 1, first=1001)
        await asyncio.sleep(0.01)
        assert (await impatient.sign_if_due()) is not None
    await assert_log_whole(database, network)


async def test_checkpoint_times_never_go_backwards(database: str, network: Network) -> None:
    await append_events(database, 1)
    first = await sign_checkpoint(database, network, clock=lambda: T0)
    await append_events(database, 1, first=1)
    second = await sign_checkpoint(database, network, clock=lambda: T0 - timedelta(minutes=10))
    assert second.signed_at == first.signed_at == T0


async def test_racing_signers_store_one_checkpoint_per_size(database: str, network: Network) -> None:
    await append_events(database, 5)
    async with pool_for(database) as pool_a, pool_for(database) as pool_b:
        signers = [
            CheckpointSigner(pool, AuditTree(), note_signer(network), interval_seconds=3600)
            for pool in (pool_a, pool_b)
        ]
        results = await asyncio.gather(*(s.sign_if_due(force=True) for s in signers))
    stored = [r for r in results if r is not None]
    assert len(stored) == 1 and stored[0].tree_size == 5
    assert [c.tree_size for c in await assert_log_whole(database, network)] == [5]


async def test_a_different_root_for_a_stored_size_is_refused(database: str, network: Network) -> None:
    await append_events(database, 2)
    stored = await sign_checkpoint(database, network)
    conn = await asyncpg.connect(database)
    try:
        same = await checkpoint_store.insert_checkpoint(conn, stored)
        assert same == stored
        forged = StoredCheckpoint(2, hashlib.sha256(b"other").digest(), stored.signed_at, stored.key_id, stored.note)
        with pytest.raises(ConflictingCheckpointError, match="already stored"):
            await checkpoint_store.insert_checkpoint(conn, forged)
        assert len(await checkpoint_store.all_checkpoints(conn)) == 1
    finally:
        await conn.close()


async def test_f4_crash_between_tree_update_and_signing_leaves_no_gap_and_no_conflict(
    database: str, network: Network
) -> None:
    await append_events(database, 3)
    await sign_checkpoint(database, network)
    await append_events(database, 4, first=3)
    crashing = CrashingSigner(network.private_key("hub"), log_origin(network.registry.network))
    async with pool_for(database) as pool:
        async with db.connection(pool) as conn:
            tree = await AuditTree.load(conn)
        with pytest.raises(SimulatedCrash):
            await CheckpointSigner(pool, tree, crashing, interval_seconds=3600).sign_if_due(force=True)
        assert tree.size == 7  # the tree was updated; the checkpoint never was
    await append_events(database, 2, first=7)  # the other processes carry on appending

    restarted = await sign_checkpoint(database, network)  # restart: tree rebuilt from the store, then signed
    assert restarted.tree_size == 9
    assert [c.tree_size for c in await assert_log_whole(database, network)] == [3, 9]


SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    sys.path.insert(0, sys.argv[1])
    from service.auditlog.checkpoints import CheckpointSigner
    from service.identity.notes import NoteSigner
    from service.auditlog.tree import AuditTree
    from service.store import db
    from service.auditlog.appending import append_event
    from tests.auditlog.audit_fixtures import event

    async def main(dsn, key, origin):
        pool = await db.create_pool(dsn, max_size=2)
        async with db.connection(pool) as conn:
            tree = await AuditTree.load(conn)
        signer = CheckpointSigner(pool, tree, NoteSigner(json.loads(key), origin), interval_seconds=0.001,
                                  max_entries=3)
        number = 0
        while True:
            async with db.transaction(pool) as conn:
                await append_event(conn, event(number))
                await append_event(conn, event(number + 1))
            number += 2
            await signer.sign_if_due()

    asyncio.run(main(*sys.argv[2:]))
    """
)


async def test_f4_kill_9_while_appending_and_signing_then_restart(database: str, network: Network) -> None:
    origin = log_origin(network.registry.network)
    key = json.dumps(network.private_key("hub"))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SCRIPT, str(ROOT), database, key, origin, stderr=asyncio.subprocess.PIPE
    )
    conn = await asyncpg.connect(database)
    try:
        for _ in range(600):  # up to a minute for it to sign a few checkpoints
            if await conn.fetchval("SELECT count(*) FROM audit_checkpoints") >= 6 or process.returncode is not None:
                break
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
        if process.returncode is None:
            process.kill()
        await process.wait()
    assert process.returncode == -9, (await process.stderr.read()).decode()[-2000:] if process.stderr else ""

    before = await assert_log_whole(database, network)
    assert len(before) >= 6
    await append_events(database, 3, first=10_000)
    after = await sign_checkpoint(database, network)
    assert after.tree_size > before[-1].tree_size
    await assert_log_whole(database, network)


async def test_the_tree_refuses_to_load_a_log_that_contradicts_itself(database: str, network: Network) -> None:
    await append_events(database, 4)
    await sign_checkpoint(database, network)
    async with superuser(database) as conn:
        await conn.execute("UPDATE audit_events SET leaf = leaf || ' '::bytea WHERE seq = 1")
    with pytest.raises(AuditIntegrityError, match="entry 1: stored leaf_hash"):
        await sign_checkpoint(database, network)

    async with superuser(database) as conn:
        await conn.execute("UPDATE audit_events SET leaf = substring(leaf from 1 for length(leaf) - 1) WHERE seq = 1")
        await conn.execute("UPDATE audit_events SET leaf_hash = $1 WHERE seq = 3", merkle.hash_leaf(b"forged"))
        await conn.execute("UPDATE audit_events SET leaf = 'forged' WHERE seq = 3")
    with pytest.raises(AuditIntegrityError, match="checkpoint of size 4 has root"):
        await sign_checkpoint(database, network)

    async with superuser(database) as conn:
        await conn.execute("DELETE FROM audit_events WHERE seq = 2")
    with pytest.raises(AuditIntegrityError, match="index 2 is missing"):
        await sign_checkpoint(database, network)
