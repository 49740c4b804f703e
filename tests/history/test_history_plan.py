"""The demo's year of history as planned (adapters/history_plan.py): pure, no hub."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from adapters.builders import nhs_number_check_digit
from adapters.history_plan import LONDON, Act, plan_year

REFERRERS = ["RM1", "RDE", "RGN", "RC9", "RGP", "RCX", "RGR"]
END = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def test_a_year_of_at_least_250_pathways_across_the_seven_referrers() -> None:
    plans = plan_year(REFERRERS, "RGT", 260, end=END)
    assert len(plans) >= 250
    assert set(Counter(p.referrer for p in plans)) == set(REFERRERS)
    referrals = [p.beats[0] for p in plans]
    assert all(b.act is Act.REFER for b in referrals)
    assert min(b.at for b in referrals) >= END - timedelta(days=366)
    assert all(b.at <= END for p in plans for b in p.beats), "nothing after the end of the history"
    local = [b.at.astimezone(LONDON) for b in referrals]
    assert all(t.weekday() < 5 and 8 <= t.hour < 18 for t in local), "referrals in London working hours"
    months = Counter((t.year, t.month) for t in local)
    assert len(months) >= 12 and min(months.values()) >= 10, "spread over the whole year"


def test_synthetic_patients_only() -> None:
    plans = plan_year(REFERRERS, "RGT", 260, end=END)
    numbers = [p.patient.nhs_number for p in plans]
    assert len(set(numbers)) == len(numbers)
    for number in numbers:
        assert number.startswith("999") and len(number) == 10
        assert nhs_number_check_digit(number[:9]) == int(number[9])


def test_every_reachable_allocation_rule_and_the_shapes_of_a_real_year() -> None:
    plans = plan_year(REFERRERS, "RGT", 260, end=END)
    rules = Counter(p.expected_rule for p in plans)
    assert {"pending", "shared", "treating", "referring"} <= set(rules)
    assert rules[None] > 0, "some referrals are not cancer pathways"
    acts = Counter(b.act for p in plans for b in p.beats)
    for act in (Act.DECLINE, Act.MORE_INFORMATION, Act.REFER_AGAIN, Act.CENTRE_REFUSES, Act.REFERRER_ACCEPTS):
        assert acts[act] > 0, act


def test_late_acknowledgements_and_exactly_one_uncollected_message() -> None:
    plans = plan_year(REFERRERS, "RGT", 260, end=END)
    late = [
        b
        for p in plans
        for b in p.beats
        if b.act is Act.ACKNOWLEDGE and b.at - p.beats[b.of or 0].at > timedelta(hours=4)
    ]
    assert len(late) >= 10
    dead = [p for p in plans if p.dead_letter is not None]
    assert len(dead) == 1
    (plan,) = dead
    outcome = plan.dead_letter
    assert plan.beats[outcome or 0].act is Act.ACCEPT
    assert not [b for b in plan.beats if b.of == outcome], "never collected, never acknowledged"
    assert plan.beats[-1].at <= plan.beats[outcome or 0].at + timedelta(days=1), "the pathway stops there"


def test_beats_follow_their_messages_and_the_plan_is_repeatable() -> None:
    plans = plan_year(REFERRERS, "RGT", 40, end=END)
    for plan in plans:
        times = [b.at for b in plan.beats]
        assert times == sorted(times)
        for index, beat in enumerate(plan.beats):
            if beat.of is not None:
                assert beat.of < index
                assert beat.act in (Act.DELIVER, Act.ACKNOWLEDGE)
    again = plan_year(REFERRERS, "RGT", 40, end=END)
    assert [(p.patient, p.beats) for p in plans] == [(p.patient, p.beats) for p in again]
