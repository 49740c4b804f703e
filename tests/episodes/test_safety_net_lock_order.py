"""The safety net's sweep and acceptances take their locks in one order, so they never deadlock (issue 26 item 8).

An acceptance locks its episode, then meets the episode's deadlines, and takes the audit sequencer's lock last.
The sweep used to lock only the overdue deadlines, then insert each alert's timeline row (a key-share lock on the
episode) after it had taken the audit lock for the alert before: with acceptances in flight PostgreSQL found a
cycle and aborted one side (DeadlockDetectedError). Now the sweep locks the episodes with the deadlines up front
(skipping those an acceptance holds) and appends its audit events last.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from service.app import SAFETY_NET
from service.episodes.safetynet import SafetyNet
from service.store import episodes as episode_store
from tests.delivery.delivery_fixtures import eventually
from tests.episodes.test_episodes_api import Clock
from tests.support.hub import Network, RunningHub, running_hub
from tests.support.messages import NAMES, pathway, referral


async def send(hub: RunningHub, ods: str, bundle: dict[str, Any]) -> None:
    client = hub.trust(ods)
    result = await client.send(client.sign(bundle))
    assert result.accepted, result.body


async def test_a_sweep_holding_a_deadline_and_an_acceptance_locking_its_episode_do_not_deadlock(
    network: Network, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    async with running_hub(network, database, clock=clock, safety_net_seconds=3600) as hub:
        await send(hub, "RM1", referral("RM1", "RGT"))
        clock.offset = timedelta(hours=5)  # its acknowledgement is overdue
        leased, go_on = asyncio.Event(), asyncio.Event()
        real_lease = episode_store.lease_overdue

        async def lease_then_pause(
            conn: asyncpg.Connection, now: datetime, *, limit: int
        ) -> list[episode_store.OverdueDeadline]:
            due = await real_lease(conn, now, limit=limit)
            leased.set()
            await go_on.wait()
            return due

        monkeypatch.setattr(episode_store, "lease_overdue", lease_then_pause)
        acceptance, observer = await asyncpg.connect(database), await asyncpg.connect(database)
        try:
            episode_id = await observer.fetchval("SELECT episode_id FROM deadlines WHERE kind = 'acknowledgement'")
            sweep = asyncio.create_task(hub.app[SAFETY_NET].sweep())
            await leased.wait()  # the sweep holds its overdue deadline

            async def accept() -> int:  # what EpisodeTracker.record does: the episode first, then its deadlines
                async with acceptance.transaction():
                    await acceptance.execute("SELECT 1 FROM episodes WHERE id = $1 FOR UPDATE", episode_id)
                    return await episode_store.meet_deadlines(
                        acceptance, episode_id=episode_id, kind="acknowledgement", at=clock()
                    )

            accepting = asyncio.create_task(accept())
            pid = acceptance.get_server_pid()

            async def acceptance_waits() -> bool:
                wait = await observer.fetchval("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid)
                return bool(wait == "Lock")

            await eventually(acceptance_waits, within=10, what="the acceptance waiting for the sweep's lock")
            go_on.set()  # the sweep now writes its alert: before the fix it waited for the episode, a cycle
            assert await sweep == 1
            assert await accepting == 1, "the acceptance went on once the sweep committed, and met the deadline"
        finally:
            await acceptance.close()
            await observer.close()


async def test_acceptances_in_flight_while_sweeps_run_never_deadlock_and_each_overdue_answer_is_alerted_once(
    network: Network, database: str
) -> None:
    clock = Clock()
    async with running_hub(network, database, clock=clock, safety_net_seconds=3600) as hub:
        safety_net: SafetyNet = hub.app[SAFETY_NET]
        pathways = [pathway(2600 + n) for n in range(16)]
        for p in pathways:
            await send(hub, "RM1", p.referral())
        clock.offset = timedelta(hours=5)  # every referral's acknowledgement is overdue
        for p in pathways:
            p.now = clock()
        half = len(pathways) // 2
        answers = [("RGT", p.acknowledge(p.sent["referral"], "RGT", NAMES["RGT"])) for p in pathways[:half]] + [
            ("RGT", p.outcome("accepted")) for p in pathways[half:]
        ]
        accepting = asyncio.gather(*(send(hub, ods, bundle) for ods, bundle in answers))
        sweeping = asyncio.gather(*(_sweep_while(safety_net, accepting) for _ in range(3)))
        await accepting
        await sweeping  # a DeadlockDetectedError in any sweep would surface here
        await safety_net.sweep_all()
        assert await safety_net.sweep_all() == 0

        async with hub_connection(hub) as conn:
            unalerted = await conn.fetchval(
                "SELECT count(*) FROM deadlines WHERE met_at IS NULL AND alerted_at IS NULL AND due_at <= $1", clock()
            )
            alerted = await conn.fetchval("SELECT count(*) FROM deadlines WHERE alerted_at IS NOT NULL")
            alerts = await conn.fetchval("SELECT count(*) FROM episode_messages WHERE kind LIKE 'alert:%-overdue'")
        assert unalerted == 0, "every overdue answer was alerted"
        assert alerted >= half, "the acknowledgements not sent were overdue"
        assert alerts == alerted, "each alerted once"


async def _sweep_while(safety_net: SafetyNet, running: asyncio.Future[Any]) -> None:
    while not running.done():
        await safety_net.sweep()
        await asyncio.sleep(0)


class hub_connection:  # noqa: N801 - used as `async with`, like a function
    def __init__(self, hub: RunningHub) -> None:
        self._dsn = hub.dsn

    async def __aenter__(self) -> asyncpg.Connection:
        self._conn: asyncpg.Connection = await asyncpg.connect(self._dsn)
        return self._conn

    async def __aexit__(self, *_: object) -> None:
        await self._conn.close()
