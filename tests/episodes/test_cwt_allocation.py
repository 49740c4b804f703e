"""Breach allocation (CONTRACT section 9; hazard HAZ-23): the contract's table row by row at every
boundary (day 38/39, 24/25, 62/63), with adjustments, solo, pending and no IPT date; and a property test against a
second formulation that reads the table literally and counts days by target dates instead of subtraction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.episodes.cwt_allocation import Allocation, Pathway, PathwayInputError, allocate, parse_pathway

START = date(2026, 9, 1)
REF, TRT = "RGN", "RGT"


def pathway(
    ipt_day: int | None, treat_day: int | None, *, adj_ref: int = 0, adj_trt: int = 0, treating: str = TRT
) -> Pathway:
    return Pathway(
        id="p",
        clock_start=START,
        ipt_received_date=START + timedelta(days=ipt_day) if ipt_day is not None else None,
        treatment_date=START + timedelta(days=treat_day) if treat_day is not None else None,
        referring=REF,
        treating=treating,
        adjustment_days_referring=adj_ref,
        adjustment_days_treating=adj_trt,
    )


@dataclass(frozen=True)
class Row:
    name: str
    ipt_day: int | None
    treat_day: int | None
    adj_ref: int
    adj_trt: int
    rule: str
    shares: dict[str, float]
    days: tuple[int | None, int | None, int | None]
    flags: tuple[bool | None, bool | None, bool | None]  # by day 38, within 24, met 62


HALF = {REF: 0.5, TRT: 0.5}
ROWS = [
    # met 62, transferred by day 38: shared; day 38 and day 62 exactly are still in time
    Row("met-62-at-62-by-38-at-38", 38, 62, 0, 0, "shared", HALF, (38, 24, 62), (True, True, True)),
    Row("met-62-by-38-late-24", 10, 62, 0, 0, "shared", HALF, (10, 52, 62), (True, False, True)),
    # met 62, transferred on day 39: the treating provider made up the time, so takes the whole pathway
    Row("met-62-transfer-day-39", 39, 62, 0, 0, "treating", {TRT: 1.0}, (39, 23, 62), (False, True, True)),
    # not met (day 63), by day 38, not within 24 (day 25): treating
    Row("breach-63-by-38-day-25", 38, 63, 0, 0, "treating", {TRT: 1.0}, (38, 25, 63), (True, False, False)),
    # not met, after day 38, within 24 (day 24 exactly): referring
    Row("breach-63-day-39-within-24", 39, 63, 0, 0, "referring", {REF: 1.0}, (39, 24, 63), (False, True, False)),
    # not met, after day 38, not within 24: shared
    Row("breach-64-day-39-day-25", 39, 64, 0, 0, "shared", HALF, (39, 25, 64), (False, False, False)),
    # adjustments: a referring pause of 5 days turns calendar day 43 into day 38
    Row("adjusted-referring", 43, 67, 5, 0, "shared", HALF, (38, 24, 62), (True, True, True)),
    Row("adjusted-referring-39", 44, 67, 5, 0, "treating", {TRT: 1.0}, (39, 23, 62), (False, True, True)),
    # a treating pause of 7 days turns calendar day 32 after transfer into day 25, and 31 into 24
    Row("adjusted-treating-25", 38, 70, 0, 7, "treating", {TRT: 1.0}, (38, 25, 63), (True, False, False)),
    Row("adjusted-treating-24", 38, 69, 0, 7, "shared", HALF, (38, 24, 62), (True, True, True)),
    Row("adjusted-both", 45, 80, 5, 10, "shared", HALF, (40, 25, 65), (False, False, False)),
    # no treatment yet: pending, no shares; day 38 flag known once the IPT date is
    Row("pending-late-transfer", 39, None, 0, 0, "pending", {}, (39, None, None), (False, None, None)),
    Row("pending-no-transfer", None, None, 0, 0, "pending", {}, (None, None, None), (None, None, None)),
    # treated but no IPT received date: split; only the 62-day figures are known
    Row("no-ipt-date-met", None, 40, 0, 0, "no-ipt-date", HALF, (None, None, 40), (None, None, True)),
    Row("no-ipt-date-breach", None, 63, 0, 0, "no-ipt-date", HALF, (None, None, 63), (None, None, False)),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_allocation_table_at_every_boundary(row: Row) -> None:
    result = allocate(pathway(row.ipt_day, row.treat_day, adj_ref=row.adj_ref, adj_trt=row.adj_trt))
    assert (result.rule, result.shares) == (row.rule, row.shares)
    assert (result.d38, result.d24, result.d62) == row.days
    assert (result.transferred_by_day_38, result.treated_within_24_days, result.met_62_days) == row.flags


@pytest.mark.parametrize(("ipt_day", "treat_day"), [(10, 20), (50, 90), (None, 100), (None, None), (40, None)])
def test_solo_pathway_is_the_treating_providers_alone_whatever_the_dates(
    ipt_day: int | None, treat_day: int | None
) -> None:
    result = allocate(pathway(ipt_day, treat_day, treating=REF))
    assert (result.rule, result.shares) == ("solo", {REF: 1.0})


def test_as_json_carries_the_contract_keys() -> None:
    assert allocate(pathway(39, 63)).as_json() == {
        "allocation_rule": "referring",
        "allocation": {REF: 1.0},
        "d38": 39,
        "d24": 24,
        "d62": 63,
        "transferred_by_day_38": False,
        "treated_within_24_days": True,
        "met_62_days": False,
    }


def literal_table(p: Pathway) -> Allocation:
    """The contract read literally: each target as a date the event must fall on or before, and the table's rows
    tried top to bottom."""
    ipt, treated = p.ipt_received_date, p.treatment_date
    day_38 = p.clock_start + timedelta(days=38 + p.adjustment_days_referring)
    day_62 = p.clock_start + timedelta(days=62 + p.adjustment_days_referring + p.adjustment_days_treating)
    by_38 = None if ipt is None else ipt <= day_38
    within_24 = None if ipt is None or treated is None else treated <= ipt + timedelta(24 + p.adjustment_days_treating)
    met_62 = None if treated is None else treated <= day_62
    both = {p.referring: 0.5, p.treating: 0.5}
    rows: list[tuple[bool, str, dict[str, float]]] = [
        (p.referring == p.treating, "solo", {p.treating: 1.0}),
        (treated is None, "pending", {}),
        (ipt is None, "no-ipt-date", both),
        (met_62 is True and by_38 is True, "shared", both),
        (met_62 is True and by_38 is False, "treating", {p.treating: 1.0}),
        (met_62 is False and by_38 is True and within_24 is False, "treating", {p.treating: 1.0}),
        (met_62 is False and by_38 is False and within_24 is True, "referring", {p.referring: 1.0}),
        (True, "shared", both),
    ]
    rule, shares = next((rule, shares) for matches, rule, shares in rows if matches)

    def days(end: date | None, begin: date | None, less: int) -> int | None:
        if end is None or begin is None:
            return None
        a, b = begin.toordinal(), end.toordinal()
        return len(range(a, b)) - len(range(b, a)) - less  # days counted one by one, negative when out of order

    return Allocation(
        rule=rule,
        shares=shares,
        d38=days(ipt, p.clock_start, p.adjustment_days_referring),
        d24=days(treated, ipt, p.adjustment_days_treating),
        d62=days(treated, p.clock_start, p.adjustment_days_referring + p.adjustment_days_treating),
        transferred_by_day_38=by_38,
        treated_within_24_days=within_24,
        met_62_days=met_62,
    )


@st.composite
def pathways(draw: st.DrawFn) -> Pathway:
    start = draw(st.dates(min_value=date(2024, 1, 1), max_value=date(2028, 12, 31)))
    ipt_after = draw(st.none() | st.integers(0, 90))
    treat_after = draw(st.none() | st.integers(0, 90))
    ipt = start + timedelta(days=ipt_after) if ipt_after is not None else None
    # mostly in order; sometimes from the clock start whatever the IPT date (allocate never refuses)
    treat_from = draw(st.sampled_from([ipt or start, ipt or start, start]))
    treated = treat_from + timedelta(days=treat_after) if treat_after is not None else None
    referring = draw(st.sampled_from(["RGN", "RGT"]))
    return Pathway(
        id="p",
        clock_start=start,
        ipt_received_date=ipt,
        treatment_date=treated,
        referring=referring,
        treating=draw(st.sampled_from(["RGT", referring])),
        adjustment_days_referring=draw(st.integers(0, 20)),
        adjustment_days_treating=draw(st.integers(0, 20)),
    )


@settings(max_examples=400, deadline=None)
@given(pathways())
def test_allocate_agrees_with_the_literal_table(p: Pathway) -> None:
    assert allocate(p) == literal_table(p)


def test_shares_of_a_decided_pathway_sum_to_one() -> None:
    for row in ROWS:
        result = allocate(pathway(row.ipt_day, row.treat_day, adj_ref=row.adj_ref, adj_trt=row.adj_trt))
        assert sum(result.shares.values()) == (0.0 if result.rule == "pending" else 1.0)


GOOD = {
    "id": "A1",
    "clock_start": "2026-09-01",
    "ipt_received_date": "2026-10-09",
    "treatment_date": None,
    "referring": "RGN",
    "treating": "RGT",
}


def test_parse_pathway_reads_a_good_item_with_default_adjustments() -> None:
    p = parse_pathway(GOOD, 0)
    assert p == Pathway("A1", date(2026, 9, 1), date(2026, 10, 9), None, "RGN", "RGT", 0, 0)


@pytest.mark.parametrize(
    ("change", "item_id", "field"),
    [
        ({"clock_start": "2026-9-1"}, "A1", "clock_start"),
        ({"clock_start": "2026-W36-1"}, "A1", "clock_start"),
        ({"ipt_received_date": "2026-02-30"}, "A1", "ipt_received_date"),
        ({"treatment_date": 20260901}, "A1", "treatment_date"),
        ({"treatment_date": "2026-08-31", "ipt_received_date": None}, "A1", "treatment_date"),
        ({"treatment_date": "2026-10-08"}, "A1", "treatment_date"),
        ({"ipt_received_date": "2026-08-31"}, "A1", "ipt_received_date"),
        ({"referring": ""}, "A1", "referring"),
        ({"adjustment_days_treating": -1}, "A1", "adjustment_days_treating"),
        ({"adjustment_days_referring": True}, "A1", "adjustment_days_referring"),
        ({"id": 7}, "item 3", "id"),
    ],
)
def test_parse_pathway_names_the_item_and_the_bad_field(change: dict[str, object], item_id: str, field: str) -> None:
    with pytest.raises(PathwayInputError) as refused:
        parse_pathway({**GOOD, **change}, 3)
    assert (refused.value.item_id, refused.value.field) == (item_id, field)


@pytest.mark.parametrize("missing", ["clock_start", "ipt_received_date", "treatment_date", "treating"])
def test_parse_pathway_refuses_a_missing_field(missing: str) -> None:
    item = {k: v for k, v in GOOD.items() if k != missing}
    with pytest.raises(PathwayInputError) as refused:
        parse_pathway(item, 0)
    assert refused.value.field == missing
