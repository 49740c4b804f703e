"""The safety net survives any fault of a sweep (issue 26 item 8): a real PostgreSQL deadlock error raised inside
the sweep's transaction once costs that pass, is counted on /metrics, and a later overdue answer is still alerted.
Before the fix the asyncpg error (not a HandoverError) ended the safety-net task silently until restart."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg
import pytest

from service.background import FAULTS
from service.store import episodes as episode_store
from tests.delivery.delivery_fixtures import eventually
from tests.episodes.test_episodes_api import Clock
from tests.ops.test_metrics_exposed import scrape
from tests.support.hub import Network, RunningHub, running_hub
from tests.support.messages import referral

RAISE_DEADLOCK = "DO $$ BEGIN RAISE EXCEPTION 'deadlock for the test' USING ERRCODE = '40P01'; END $$"


async def alerts_sent(hub: RunningHub) -> float:
    samples = await scrape(hub)
    return sum(
        v for labels, v in samples["handover_safety_net_alerts_sent_total"] if labels["kind"] == "acknowledgement"
    )


async def background_errors(hub: RunningHub, duty: str) -> float:
    samples = await scrape(hub)
    return sum(v for labels, v in samples["handover_background_errors_total"] if labels["duty"] == duty)


async def test_a_deadlock_in_the_sweep_costs_one_pass_and_a_later_overdue_answer_is_still_alerted(
    network: Network, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_lease = episode_store.lease_overdue
    raised: list[type[BaseException]] = []

    async def lease_that_deadlocks_once(
        conn: asyncpg.Connection, now: datetime, *, limit: int
    ) -> list[episode_store.OverdueDeadline]:
        if not raised:
            try:
                await conn.execute(RAISE_DEADLOCK)  # PostgreSQL itself raises it: asyncpg's real error class
            except asyncpg.DeadlockDetectedError as err:
                raised.append(type(err))
                raise
        return await real_lease(conn, now, limit=limit)

    monkeypatch.setattr(episode_store, "lease_overdue", lease_that_deadlocks_once)
    clock = Clock()
    errors_before = FAULTS.counts.get("safety-net", 0)  # process-wide: other tests' hubs may have counted
    async with running_hub(network, database, clock=clock, safety_net_seconds=0.05) as hub:
        await eventually(lambda: _true(bool(raised)), within=10, what="the sweep hit the deadlock")
        assert raised == [asyncpg.DeadlockDetectedError]
        client = hub.trust("RM1")
        assert (await client.send(client.sign(referral("RM1", "RGT")))).accepted
        clock.offset = timedelta(hours=5)  # the acknowledgement is now overdue: a sweep that still runs alerts it

        async def alerted() -> bool:
            return await alerts_sent(hub) >= 1

        await eventually(alerted, within=10, what="the overdue acknowledgement alerted after the deadlock")
        assert await background_errors(hub, "safety-net") == errors_before + 1


async def _true(condition: bool) -> bool:
    return condition
