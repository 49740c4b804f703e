"""Appending many audit events in one statement (`auditlog.appending.append_events`, used by duties such as payload
retention): the same dense indexes, leaves and leaf hashes as one append each, in order, beside single appends
and concurrent acceptances; nothing at all for an empty list; and the tree and verifier agree afterwards."""

from __future__ import annotations

import asyncio

import asyncpg

from service.auditlog.appending import append_event, append_events
from service.auditlog.tree import AuditTree
from tests.auditlog.audit_fixtures import append_events as append_one_by_one
from tests.auditlog.audit_fixtures import event


async def test_t1_a_bulk_append_gives_dense_indexes_in_order_beside_single_appends(database: str) -> None:
    await append_one_by_one(database, 3)
    conn = await asyncpg.connect(database)
    try:
        async with conn.transaction():
            assert await append_events(conn, []) == []
            appended = await append_events(conn, [event(n) for n in range(3, 53)])
        async with conn.transaction():
            single = await append_event(conn, event(53))
        assert [leaf.index for leaf in appended] == list(range(3, 53))
        assert single.index == 53
        rows = await conn.fetch("SELECT seq, leaf, leaf_hash FROM audit_events ORDER BY seq")
        assert [r["seq"] for r in rows] == list(range(54))
        for number, row in enumerate(rows):
            assert bytes(row["leaf"]) == event(number).leaf()
        assert [bytes(r["leaf_hash"]) for r in rows[3:53]] == [leaf.leaf_hash for leaf in appended]
        tree = await AuditTree.load(conn)  # checks every leaf's hash and that no index is missing
        assert tree.size == 54
    finally:
        await conn.close()


async def test_t1_bulk_and_single_appends_racing_keep_the_log_dense(database: str) -> None:
    async def bulk(first: int) -> None:
        conn = await asyncpg.connect(database)
        try:
            for start in range(first, first + 200, 40):
                async with conn.transaction():
                    await append_events(conn, [event(n) for n in range(start, start + 40)])
        finally:
            await conn.close()

    await asyncio.gather(bulk(0), append_one_by_one(database, 60, first=1000), bulk(2000))
    conn = await asyncpg.connect(database)
    try:
        count, top = await conn.fetchrow("SELECT count(*), max(seq) FROM audit_events")
        assert (count, top) == (460, 459)
        assert (await AuditTree.load(conn)).size == 460
    finally:
        await conn.close()
