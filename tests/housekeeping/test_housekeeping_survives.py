"""Housekeeping survives a store fault outside a duty (issue 26 item 8): a PostgreSQL error taking the duty's lock
(here a real deadlock error, raised by PostgreSQL itself) used to escape the loop and end housekeeping silently."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from service.background import FAULTS
from service.housekeeping.scheduler import Housekeeping
from service.store import db
from service.store import housekeeping as housekeeping_store
from tests.delivery.delivery_fixtures import eventually

RAISE_DEADLOCK = "DO $$ BEGIN RAISE EXCEPTION 'deadlock for the test' USING ERRCODE = '40P01'; END $$"


class CountingDuty:
    name = "counting"
    every = timedelta(milliseconds=10)

    def __init__(self) -> None:
        self.runs = 0

    async def run(self, conn: asyncpg.Connection, stopping: asyncio.Event) -> int:
        self.runs += 1
        return 0


async def test_a_database_error_taking_a_duty_lock_costs_one_pass_and_housekeeping_goes_on(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_lock = housekeeping_store.try_lock_duty
    raised: list[str] = []

    async def lock_failing_once(conn: asyncpg.Connection, duty: str) -> bool:
        if not raised:
            raised.append(duty)
            await conn.execute(RAISE_DEADLOCK)
        return await real_lock(conn, duty)

    monkeypatch.setattr(housekeeping_store, "try_lock_duty", lock_failing_once)
    duty, stopping = CountingDuty(), asyncio.Event()
    before = FAULTS.counts.get("housekeeping", 0)
    pool = await db.create_pool(database, max_size=2)
    try:
        task = asyncio.create_task(Housekeeping(pool, [duty]).run(stopping))

        async def ran() -> bool:
            return duty.runs >= 1 or task.done()

        await eventually(ran, within=10, what="the duty run after the fault")
        stopping.set()
        await asyncio.wait_for(task, 10)  # the stopping event still ends it; a dead task re-raises here
    finally:
        await pool.close()
    assert raised == ["counting"] and duty.runs >= 1
    assert FAULTS.counts["housekeeping"] == before + 1
