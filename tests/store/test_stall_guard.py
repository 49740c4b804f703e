"""The stall guard's clock (service/store/stalls.py): each guarded use whose time runs out has its connection's
socket closed at its own deadline, never earlier; a use done in time is left alone; one timer serves them all."""

from __future__ import annotations

import asyncio

from service.store.stalls import StallGuard

SECONDS = 0.2


class Connection:
    """Stands in for an asyncpg connection: the guard only ever terminates one."""

    def __init__(self) -> None:
        self.terminated_at: float | None = None

    def terminate(self) -> None:
        self.terminated_at = asyncio.get_running_loop().time()


async def test_each_use_out_of_time_is_closed_at_its_own_deadline_and_one_done_in_time_is_not() -> None:
    loop = asyncio.get_running_loop()
    guard = StallGuard(SECONDS)
    first, answered, second = Connection(), Connection(), Connection()
    started = loop.time()
    watches = [guard.watch(first), guard.watch(answered)]
    await asyncio.sleep(SECONDS / 2)
    watches.append(guard.watch(second))
    watches[1].done()
    await asyncio.sleep(SECONDS * 2)
    assert [w.expired for w in watches] == [True, False, True]
    assert answered.terminated_at is None
    assert first.terminated_at is not None and first.terminated_at >= started + SECONDS
    assert second.terminated_at is not None and second.terminated_at >= watches[2].deadline
    assert second.terminated_at > first.terminated_at + SECONDS / 4  # not swept early with the first


async def test_many_uses_share_one_timer() -> None:
    loop = asyncio.get_running_loop()
    guard = StallGuard(SECONDS)
    before = len(loop._scheduled)  # type: ignore[attr-defined]  # the loop's timer heap
    watches = [guard.watch(Connection()) for _ in range(50)]
    assert len(loop._scheduled) == before + 1  # type: ignore[attr-defined]
    for watch in watches:
        watch.done()
    await asyncio.sleep(SECONDS * 1.5)
    assert not any(watch.expired for watch in watches)


async def test_a_use_answered_after_its_deadline_passed_but_before_its_turn_is_left_alone() -> None:
    guard = StallGuard(0)
    conn = Connection()
    watch = guard.watch(conn)
    await asyncio.sleep(0)  # the guard's timer runs: the expiry is queued
    watch.done()
    await asyncio.sleep(0.05)
    assert not watch.expired and conn.terminated_at is None
