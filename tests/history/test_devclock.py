"""The DemoClock itself (service/devclock.py): tickets are single-use, advance runs the duties, release ends it."""

from __future__ import annotations

import argparse
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from service.clock import utc_now
from service.config import Settings
from service.demo_cli import _demo_history
from service.devclock import DemoClock

REAL = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
PAST = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def test_a_ticket_is_redeemed_once_and_only_for_its_own_block() -> None:
    clock = DemoClock(lambda: REAL)
    token = clock.ticket(PAST)
    moment = clock.redeem(token)
    assert moment == PAST
    assert clock.redeem(token) is None
    assert clock.redeem("made-up") is None
    with clock.at(PAST):
        assert clock() == PAST
    assert clock() == REAL


async def test_advance_holds_the_time_and_runs_the_duties_at_it_until_released() -> None:
    clock = DemoClock(lambda: REAL)
    seen: list[datetime] = []

    async def duty() -> int:
        seen.append(clock())
        return 2

    clock.add_duty(duty)
    assert await clock.advance(PAST) == 2
    assert seen == [PAST]
    assert clock() == PAST
    with clock.at(REAL):
        assert clock() == REAL, "a request's ticket wins over the held time"
    token = clock.ticket(PAST)
    clock.release()
    assert clock() == REAL
    assert clock.redeem(token) is None, "release drops tickets not yet used"


def test_moments_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone"):
        DemoClock().ticket(datetime(2026, 1, 1))  # naive: the point of the test


def test_the_demo_plays_history_on_a_demo_clock_only_in_development_mode() -> None:
    args = argparse.Namespace(history=12)
    ordinary = replace(Settings.from_env({}), dev_idp=False)
    clock, history = _demo_history(args, ordinary, "http://127.0.0.1:1", None, "urn:events")
    assert clock is utc_now and history is None
    clock, history = _demo_history(args, replace(ordinary, dev_idp=True), "http://127.0.0.1:1", None, "urn:events")
    assert isinstance(clock, DemoClock) and history is not None
    clock, history = _demo_history(argparse.Namespace(history=0), replace(ordinary, dev_idp=True), "", None, "")
    assert clock is utc_now and history is None
