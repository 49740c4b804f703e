"""The loop runner (service/background.py): a pass's fault is counted and the duty goes on after a bounded
back-off; the `until` event and cancellation still stop it."""

from __future__ import annotations

import asyncio

import pytest

from service.background import MAX_BACKOFF_SECONDS, DutyFaults, backoff_seconds, run_forever
from service.errors import Code, HandoverError


async def test_a_pass_that_raises_is_counted_and_the_duty_runs_on_until_told_to_stop() -> None:
    faults, passes, until = DutyFaults(), [], asyncio.Event()
    failures: list[BaseException] = [RuntimeError("bug on odd data"), HandoverError(Code.UNAVAILABLE, "store down")]

    async def one_pass() -> None:
        passes.append(1)
        if failures:
            raise failures.pop(0)
        if len(passes) == 4:
            until.set()

    await asyncio.wait_for(run_forever("test-duty", one_pass, interval=0.001, until=until, faults=faults), 10)
    assert len(passes) == 4
    assert faults.counts == {"test-duty": 2}


async def test_a_duty_is_listed_at_zero_before_any_fault() -> None:
    faults, until = DutyFaults(), asyncio.Event()

    async def one_pass() -> None:
        until.set()

    await run_forever("quiet-duty", one_pass, interval=0.001, until=until, faults=faults)
    assert faults.counts == {"quiet-duty": 0}


@pytest.mark.parametrize("where", ["in a pass", "between passes"])
async def test_cancellation_stops_the_duty_and_is_not_counted(where: str) -> None:
    faults, started = DutyFaults(), asyncio.Event()

    async def one_pass() -> None:
        started.set()
        if where == "in a pass":
            await asyncio.sleep(3600)

    task = asyncio.create_task(run_forever("cancelled-duty", one_pass, interval=3600, faults=faults))
    await started.wait()
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert faults.counts == {"cancelled-duty": 0}


async def test_wake_starts_the_next_pass_early() -> None:
    faults, wake, until, first, passes = DutyFaults(), asyncio.Event(), asyncio.Event(), asyncio.Event(), []

    async def one_pass() -> None:
        passes.append(1)
        first.set()
        if len(passes) == 2:
            until.set()
            wake.set()  # so the pause after this pass ends at once too

    task = asyncio.create_task(run_forever("woken", one_pass, interval=3600, until=until, wake=wake, faults=faults))
    await first.wait()
    wake.set()
    await asyncio.wait_for(task, 10)
    assert len(passes) == 2


def test_the_back_off_doubles_per_failure_and_is_bounded() -> None:
    assert backoff_seconds(1.0, 0) == 1.0
    assert [backoff_seconds(1.0, n) for n in (1, 2, 3, 4, 5, 6, 50)] == [1, 2, 4, 8, 16, 16, 16]
    assert backoff_seconds(10.0, 50) == MAX_BACKOFF_SECONDS
    assert backoff_seconds(600.0, 50) == 600.0, "never more often than the duty's own interval"
    assert backoff_seconds(0.05, 1000) == pytest.approx(0.8)
