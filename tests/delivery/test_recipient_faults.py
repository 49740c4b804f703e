"""Network faults between the hub and a recipient, through our TCP fault proxy: a partition (F7), responses
later than the relay's timeout (F8), a connection reset mid-response (F9). The outcome is unknown to the hub
each time; the redelivery's stable X-Request-ID lets the recipient answer 409, so its business layer sees the
message once. Also: a dead recipient never slows the others, and several relays share the work."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

from service.delivery.backoff import backoff_ceiling
from tests.delivery.delivery_fixtures import eventually, outbox_world, recipients, with_settings
from tests.support.faultproxy import Direction, FaultProxy
from tests.support.hub import Network


async def test_f7_partition_follows_the_backoff_schedule_and_heals(
    database: str, network: Network, tmp_path: Path
) -> None:
    async with (
        outbox_world(database, network, tmp_path) as world,
        recipients(network, "RGT") as (rgt,),
        FaultProxy("127.0.0.1", rgt.port) as proxy,
    ):
        proxy.hang()
        sent = [await world.accept() for _ in range(3)]
        relay = world.relay({"RGT": f"http://127.0.0.1:{proxy.port}/fhir"}, with_settings(timeout_seconds=0.2))
        schedule, before = [], dict.fromkeys((s.message_id for s in sent), 0)
        for _ in range(6):
            began = world.clock()
            await relay.run_once()
            for s in sent:
                row = await world.delivery(s.message_id)
                if row["attempts"] > before[s.message_id]:  # attempted (and rescheduled) this round
                    wait = row["next_attempt_at"] - began
                    assert timedelta(0) <= wait <= backoff_ceiling(row["attempts"]), "full jitter within the cap"
                    schedule.append((row["attempts"], row["last_error"]))
                before[s.message_id] = row["attempts"]
            world.clock.advance(timedelta(minutes=20))  # past any wait, even once the circuit is open
        assert len(schedule) >= 6 and all(error == "timeout" for _, error in schedule)
        assert max(attempts for attempts, _ in schedule) >= 2
        assert rgt.requests == [], "nothing got through the partition"
        proxy.heal()
        world.clock.advance(timedelta(minutes=20))
        assert await relay.run_once() == 1, "the open circuit lets one probe through"
        assert await relay.run_once() == 2, "its success closes the circuit"
        assert set((await world.states()).values()) == {"delivered"}
        await world.check_inv1()
        await world.check_inv2(rgt, exactly={s.bundle_identifier for s in sent})


async def test_f8_responses_later_than_the_timeout_are_absorbed_by_409(
    database: str, network: Network, tmp_path: Path
) -> None:
    async with (
        outbox_world(database, network, tmp_path) as world,
        recipients(network, "RGT") as (rgt,),
        FaultProxy("127.0.0.1", rgt.port) as proxy,
    ):
        proxy.latency[Direction.DOWNSTREAM] = 0.4  # answers arrive after the relay's 0.25 s timeout
        proxy.jitter = 0.1
        sent = [await world.accept() for _ in range(4)]
        relay = world.relay({"RGT": f"http://127.0.0.1:{proxy.port}/fhir"}, with_settings(timeout_seconds=0.25))
        await relay.run_once()
        assert {(await world.delivery(s.message_id))["last_error"] for s in sent} == {"timeout"}
        assert len(rgt.business) == 4, "the recipient processed them all the first time"
        proxy.heal()
        world.clock.advance(timedelta(minutes=20))
        await relay.run_once()
        assert set((await world.states()).values()) == {"delivered"}
        assert sorted(r.status for r in rgt.requests) == [200] * 4 + [409] * 4
        await world.check_inv1()
        await world.check_inv2(rgt, exactly={s.bundle_identifier for s in sent})


async def test_f9_reset_mid_response_is_an_unknown_outcome_retried_once_more(
    database: str, network: Network, tmp_path: Path
) -> None:
    async with (
        outbox_world(database, network, tmp_path) as world,
        recipients(network, "RGT") as (rgt,),
        FaultProxy("127.0.0.1", rgt.port) as proxy,
    ):
        proxy.cut_after(12, Direction.DOWNSTREAM)  # "HTTP/1.1 200" and then a reset
        sent = await world.accept()
        relay = world.relay({"RGT": f"http://127.0.0.1:{proxy.port}/fhir"})
        await relay.run_once()
        row = await world.delivery(sent.message_id)
        assert row["state"] == "pending" and row["last_error"] not in (None, "timeout")
        proxy.heal()
        world.clock.advance(timedelta(minutes=20))
        await relay.run_once()
        assert (await world.delivery(sent.message_id))["state"] == "delivered"
        assert [r.status for r in rgt.requests] == [200, 409]
        await world.check_inv1()
        await world.check_inv2(rgt, exactly={sent.bundle_identifier})


async def test_one_dead_recipient_never_slows_the_others(database: str, network: Network, tmp_path: Path) -> None:
    async with (
        outbox_world(database, network, tmp_path) as world,
        recipients(network, "RGT", "RM1") as (rgt, rm1),
        FaultProxy("127.0.0.1", rgt.port) as dead,
    ):
        dead.hang()
        for _ in range(30):
            await world.accept("RM1", "RGT")
        healthy = [await world.accept("RGT", "RM1") for _ in range(30)]
        relay = world.relay(
            {"RGT": f"http://127.0.0.1:{dead.port}/fhir", "RM1": rm1.endpoint},
            with_settings(timeout_seconds=5.0, shutdown_grace_seconds=0.2),
        )
        began = time.monotonic()
        await relay.start()

        async def healthy_done() -> bool:
            states = await world.states()
            return all(states[h.message_id] == "delivered" for h in healthy)

        await eventually(healthy_done, within=3.0, what="the healthy recipient's messages")
        assert time.monotonic() - began < 3.0
        rows = await world.fetch("SELECT lease_until FROM deliveries WHERE recipient_ods = 'RGT'")
        leased = [r for r in rows if r["lease_until"].year > 1]
        assert 0 < len(leased) <= relay.settings.concurrency, "at most `concurrency` pushes to the dead recipient"
        await relay.stop()
        await world.check_inv2(rm1, exactly={h.bundle_identifier for h in healthy})


async def test_several_relays_share_the_work_and_push_each_message_once(
    database: str, network: Network, tmp_path: Path
) -> None:
    async with outbox_world(database, network, tmp_path) as world, recipients(network, "RGT") as (rgt,):
        sent = [await world.accept() for _ in range(40)]
        relays = [world.relay({"RGT": rgt.endpoint}, seed=n) for n in range(3)]
        for relay in relays:
            await relay.start()

        async def all_delivered() -> bool:
            return set((await world.states()).values()) == {"delivered"}

        await eventually(all_delivered, within=10.0, what="every message delivered")
        assert len(rgt.requests) == 40 and {r.status for r in rgt.requests} == {200}, "SKIP LOCKED: no double push"
        await world.check_inv1()
        await world.check_inv2(rgt, exactly={s.bundle_identifier for s in sent})


async def test_stop_finishes_or_releases_leased_jobs(database: str, network: Network, tmp_path: Path) -> None:
    async with outbox_world(database, network, tmp_path) as world, recipients(network, "RGT") as (rgt,):
        rgt.hold_after_processing = asyncio.Event()
        sent = [await world.accept() for _ in range(6)]
        relay = world.relay({"RGT": rgt.endpoint}, with_settings(timeout_seconds=30.0, shutdown_grace_seconds=0.3))
        await relay.start()
        await eventually(lambda: _count_leased(world, 4), what="four pushes in flight")
        await relay.stop()
        rows = await world.fetch("SELECT * FROM deliveries ORDER BY id")
        assert all(r["state"] == "pending" and r["lease_until"].year < 2 and r["lease_token"] is None for r in rows)
        assert [r["attempts"] for r in rows] == [0] * 6, "released: attempts as before the lease"
        assert len(rgt.business) == 4
        rgt.hold_after_processing = None
        await world.relay({"RGT": rgt.endpoint}).run_once()
        await world.relay({"RGT": rgt.endpoint}).run_once()
        assert set((await world.states()).values()) == {"delivered"}
        await world.check_inv2(rgt, exactly={s.bundle_identifier for s in sent})


async def _count_leased(world: object, n: int) -> bool:
    from tests.delivery.delivery_fixtures import World

    assert isinstance(world, World)
    rows = await world.fetch("SELECT count(*) AS n FROM deliveries WHERE lease_until > now() - interval '1 day'")
    return int(rows[0]["n"]) == n
