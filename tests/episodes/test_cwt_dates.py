"""The rules for an episode's CWT dates (service/episodes/cwt_dates.py) and the clock flags' agreement with them
(clocks.py, clockwatch.py), as pure functions: first recorded stands, adjustments, dates out of order, the IPT
date cleared by more-information-needed and set again by the completing referral, adjusted targets."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from service.episodes.clockwatch import due_alerts
from service.episodes.cwt_dates import CwtConflict, CwtMessage, next_cwt_dates
from service.episodes.cwt_reading import CwtItems, london_date
from service.episodes.cwt_view import cancer_waiting_times, cwt_allocation
from service.episodes.machine import Kind
from service.store.cwt import CwtDates
from service.store.pathway_clocks import ClockedEpisode
from service.ui.cwt_picture import draw_cwt

START = date(2026, 10, 1)
NOW = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)  # GMT in winter: still 30 November in London


def message(kind: Kind, *, changed: bool = True, reopened: bool = False, at: datetime = NOW) -> CwtMessage:
    return CwtMessage(kind, changed, reopened, uuid.uuid4(), at)


def test_ipt_date_is_the_london_date_of_the_first_cancer_referral_and_moves_only_after_more_information() -> None:
    summer = datetime(2026, 6, 30, 23, 30, tzinfo=UTC)  # 1 July in London (BST)
    assert london_date(summer) == date(2026, 7, 1) and london_date(NOW) == date(2026, 11, 30)
    first = next_cwt_dates(CwtDates(clock_start=START), CwtItems(), message(Kind.REFERRAL, at=NOW))
    assert first.ipt_received_date == date(2026, 11, 30)
    resent = next_cwt_dates(first, CwtItems(), message(Kind.REFERRAL, changed=False, at=NOW + timedelta(days=2)))
    assert resent.ipt_received_date == date(2026, 11, 30)
    cleared = next_cwt_dates(first, CwtItems(), message(Kind.OUTCOME_MORE_INFORMATION))
    assert cleared.ipt_received_date is None and cleared.ipt_received_message_id is None
    completing = message(Kind.REFERRAL, reopened=True, at=NOW + timedelta(days=3))
    again = next_cwt_dates(cleared, CwtItems(), completing)
    assert again.ipt_received_date == date(2026, 12, 3) and again.ipt_received_message_id == completing.message_id
    no_clock = next_cwt_dates(CwtDates(), CwtItems(), message(Kind.REFERRAL))
    assert no_clock.ipt_received_date is None


def test_the_first_recorded_date_stands_and_a_different_one_is_refused() -> None:
    dates = CwtDates(clock_start=START, ipt_received_date=date(2026, 11, 1))
    decided = next_cwt_dates(
        dates, CwtItems(decision_to_treat=date(2026, 11, 5)), message(Kind.OUTCOME_ACCEPTED, changed=False)
    )
    same = next_cwt_dates(decided, CwtItems(decision_to_treat=date(2026, 11, 5)), message(Kind.OUTCOME_ACCEPTED))
    assert same == decided
    with pytest.raises(CwtConflict, match="decision to treat date"):
        next_cwt_dates(decided, CwtItems(decision_to_treat=date(2026, 11, 6)), message(Kind.OUTCOME_ACCEPTED))
    treated = next_cwt_dates(
        decided,
        CwtItems(treatment_date=date(2026, 11, 20), treatment_opcs4="J02.1", adjustment_days_treating=3),
        message(Kind.DISCHARGE_SUMMARY),
    )
    assert (treated.treatment_date, treated.treatment_opcs4, treated.adjustment_days_treating) == (
        date(2026, 11, 20),
        "J02.1",
        3,
    )
    with pytest.raises(CwtConflict, match="first definitive treatment date"):
        next_cwt_dates(treated, CwtItems(treatment_date=date(2026, 11, 21)), message(Kind.DISCHARGE_SUMMARY))
    with pytest.raises(CwtConflict, match="adjustment days"):
        next_cwt_dates(treated, CwtItems(adjustment_days_treating=4), message(Kind.DISCHARGE_SUMMARY))


@pytest.mark.parametrize(
    ("items", "words"),
    [
        (CwtItems(treatment_date=date(2026, 12, 1)), "after the day the message was sent"),
        (CwtItems(treatment_date=date(2026, 9, 30)), "before the cancer pathway start date"),
        (CwtItems(treatment_date=date(2026, 10, 31)), "before the IPT received date"),
        (CwtItems(decision_to_treat=date(2026, 12, 1)), "decision to treat date is after"),
    ],
)
def test_dates_out_of_order_are_refused(items: CwtItems, words: str) -> None:
    dates = CwtDates(clock_start=START, ipt_received_date=date(2026, 11, 1))
    with pytest.raises(CwtConflict, match=words):
        next_cwt_dates(dates, items, message(Kind.DISCHARGE_SUMMARY))


def clocked(cwt: CwtDates, *, opened: date, treated_at: datetime | None = None) -> ClockedEpisode:
    opened_at = datetime(opened.year, opened.month, opened.day, 9, tzinfo=UTC)
    return ClockedEpisode(uuid.uuid4(), "RM1", "RGT", START, opened_at, treated_at, "h", frozenset(), cwt)


def test_clock_alerts_use_the_ipt_date_the_treatment_date_and_the_adjustments() -> None:
    today = START + timedelta(days=80)
    # Arrived on day 45 but 10 adjustment days before the transfer: day 35, no day-38 breach.
    adjusted = CwtDates(clock_start=START, ipt_received_date=START + timedelta(days=45), adjustment_days_referring=10)
    assert [code for code, _ in due_alerts(clocked(adjusted, opened=START + timedelta(days=45)), today, 7)] == [
        "day-62-breached"
    ]
    # Admitted (transfer of care accepted) on day 50, operated on day 70: the day-62 breach is alerted.
    late = CwtDates(
        clock_start=START, ipt_received_date=START + timedelta(days=30), treatment_date=START + timedelta(days=70)
    )
    admitted = datetime(2026, 11, 20, 9, tzinfo=UTC)
    assert due_alerts(clocked(late, opened=START + timedelta(days=30), treated_at=admitted), today, 7) == [
        ("day-62-breached", START + timedelta(days=62))
    ]
    # Treated on day 60: nothing.
    met = CwtDates(
        clock_start=START, ipt_received_date=START + timedelta(days=30), treatment_date=START + timedelta(days=60)
    )
    assert due_alerts(clocked(met, opened=START + timedelta(days=30)), today, 7) == []


@pytest.mark.parametrize(
    ("referring", "dates", "rule"),
    [
        ("RGT", CwtDates(clock_start=START, treatment_date=START + timedelta(days=50)), "solo"),
        ("RM1", CwtDates(clock_start=START, treatment_date=START + timedelta(days=50)), "no-ipt-date"),
    ],
)
def test_the_rules_the_message_flow_cannot_reach_still_show_in_the_view(
    referring: str, dates: CwtDates, rule: str
) -> None:
    """solo and no-ipt-date (e.g. a pathway recorded before the hub dated IPTs) show like any other rule."""
    view = cancer_waiting_times("e", referring, "RGT", dates)
    assert view is not None and view["allocation_rule"] == rule and view["met_31_days"] is None
    assert view["d62"] == 50 and view["d38"] is None
    allocation = cwt_allocation("e", referring, "RGT", dates)
    assert allocation is not None
    picture = draw_cwt(allocation, 50, "words")
    assert [bar.days for bar in picture.bars] == [None, None, 50] and picture.bars[2].met is True
    assert cancer_waiting_times("e", referring, "RGT", CwtDates()) is None
