"""The acceptance's transaction whose last write travels with COMMIT (`db.endable_transaction`, issue 12): what it
writes commits together or not at all, a failed last write rolls everything back and leaves the pooled connection
usable, and the receipt statement stores any bytes exactly and takes only checked literals."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from service.store import db
from service.store.messages import store_receipt_statement


@pytest.fixture
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool of one connection (each use in a test reuses the same one) and a table `notes` to write to."""
    pool = await db.create_pool(database, max_size=1)
    try:
        async with db.connection(pool) as conn:
            await conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body bytea)")
        yield pool
    finally:
        await pool.close()


async def test_the_last_write_and_commit_travel_together(pool: asyncpg.Pool) -> None:
    async with db.endable_transaction(pool) as tx:
        await tx.conn.execute("INSERT INTO notes VALUES (1, NULL)")
        await tx.commit_after("UPDATE notes SET body = '\\x00ff'::bytea WHERE id = 1")
        assert not tx.conn.is_in_transaction()
    async with db.connection(pool) as conn:
        assert await conn.fetchval("SELECT body FROM notes WHERE id = 1") == b"\x00\xff"


async def test_without_commit_after_the_block_commits(pool: asyncpg.Pool) -> None:
    async with db.endable_transaction(pool) as tx:
        await tx.conn.execute("INSERT INTO notes VALUES (2, NULL)")
    async with db.connection(pool) as conn:
        assert await conn.fetchval("SELECT count(*) FROM notes") == 1


async def test_an_exception_rolls_everything_back(pool: asyncpg.Pool) -> None:
    async def refused() -> None:
        async with db.endable_transaction(pool) as tx:
            await tx.conn.execute("INSERT INTO notes VALUES (3, NULL)")
            raise RuntimeError("refused after the first write")

    with pytest.raises(RuntimeError, match="refused"):
        await refused()
    async with db.connection(pool) as conn:
        assert await conn.fetchval("SELECT count(*) FROM notes") == 0
        assert not conn.is_in_transaction()


async def test_a_failed_last_write_rolls_back_and_the_connection_stays_usable(pool: asyncpg.Pool) -> None:
    async def last_write_fails() -> None:
        async with db.endable_transaction(pool) as tx:
            await tx.conn.execute("INSERT INTO notes VALUES (4, NULL)")
            await tx.commit_after("INSERT INTO notes VALUES (4, NULL)")

    with pytest.raises(asyncpg.UniqueViolationError):
        await last_write_fails()
    async with db.endable_transaction(pool) as tx:  # the same pooled connection, clean again
        await tx.conn.execute("INSERT INTO notes VALUES (5, NULL)")
    async with db.connection(pool) as conn:
        assert [r["id"] for r in await conn.fetch("SELECT id FROM notes")] == [5]


async def test_the_receipt_statement_stores_every_byte_exactly(pool: asyncpg.Pool) -> None:
    receipt = bytes(range(256)) + "\u2019\u00e9\u2028".encode() + b"'; DROP TABLE messages; --"
    request_id = uuid.uuid4()
    async with db.connection(pool) as conn:  # this database of its own holds no message for the key to name
        await conn.execute("ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_message_id_fkey")
    async with db.endable_transaction(pool) as tx:
        await tx.conn.execute(
            "INSERT INTO idempotency_keys (sender_ods, request_id, payload_sha256, message_id) "
            "VALUES ('RGN', $1, 'x', $2)",
            request_id,
            uuid.uuid4(),
        )
        await tx.commit_after(store_receipt_statement("RGN", request_id, receipt))
    async with db.connection(pool) as conn:
        stored = await conn.fetchval("SELECT receipt FROM idempotency_keys WHERE request_id = $1", request_id)
    assert stored == receipt


@pytest.mark.parametrize("sender", ["RGN'; --", "", "rgn", "R GN"])
def test_the_receipt_statement_takes_only_an_ods_code(sender: str) -> None:
    with pytest.raises(ValueError, match="not an ODS code and a UUID"):
        store_receipt_statement(sender, uuid.uuid4(), b"receipt")


def test_the_receipt_statement_takes_only_a_uuid() -> None:
    with pytest.raises(ValueError, match="not an ODS code and a UUID"):
        store_receipt_statement("RGN", "1' OR '1'='1", b"receipt")  # type: ignore[arg-type]


async def test_after_a_commit_the_pool_skips_its_reset_round_trip_and_otherwise_resets(pool: asyncpg.Pool) -> None:
    """Shown with a session setting (which `endable_transaction`'s callers must not make): it survives release
    only after an endable transaction's commit; after a plain use or a rollback the pool resets it."""

    async def seen() -> str:
        async with db.connection(pool) as conn:
            return str(await conn.fetchval("SELECT current_setting('application_name')"))

    async with db.connection(pool) as conn:
        await conn.execute("SET application_name = 'plain use'")
    assert await seen() == ""
    async with db.endable_transaction(pool) as tx:
        await tx.conn.execute("SET application_name = 'after commit'")
    assert await seen() == "after commit"  # no reset this once
    assert await seen() == ""  # reset as usual the time after

    async def rolled_back() -> None:
        async with db.endable_transaction(pool) as tx:
            await tx.conn.execute("SET application_name = 'rolled back'")
            raise RuntimeError("refused")

    with pytest.raises(RuntimeError, match="refused"):
        await rolled_back()
    assert await seen() == ""


async def test_releasing_a_clean_connection_arms_no_timer(pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing goes to the server on its release, so nothing needs bounding; otherwise the reset is bounded."""
    loop = asyncio.get_running_loop()
    armed: list[float] = []
    call_at = loop.call_at

    def counting_call_at(when: float, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        armed.append(when)
        return call_at(when, *args, **kwargs)

    async with db.connection(pool) as conn:
        monkeypatch.setattr(loop, "call_at", counting_call_at)
        conn.left_clean()
        await conn.reset(timeout=5)
        assert armed == []
        await conn.reset(timeout=5)  # not marked clean this time: reset, within the bound
        assert armed  # the bound, and the reset statement's own command timeout
        monkeypatch.undo()
