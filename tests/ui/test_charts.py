"""The bar chart layout: a scale that suits the data (round steps, labels that differ, whole steps for counts),
bar heights, small values that stay visible, gaps for missing values, and a target line that always fits.
Property tests throw awkward data at it: all zero, one value, very large, tiny fractions."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.ui.charts import CATEGORY_CHAR, HEIGHT, MIN_BAR, TOP, Series, bar_chart, nice_scale, tick_label
from service.ui.governance import duration_unit


@pytest.mark.parametrize(
    ("largest", "whole", "labels"),
    [
        (0, True, ["0", "1"]),
        (1, True, ["0", "1"]),
        (2, True, ["0", "1", "2"]),
        (7, True, ["0", "2", "4", "6", "8"]),
        (200, True, ["0", "50", "100", "150", "200"]),
        (201, True, ["0", "100", "200", "300"]),
        (0.3, False, ["0", "0.1", "0.2", "0.3"]),
        (1, False, ["0", "0.25", "0.50", "0.75", "1.00"]),
        (0.01, False, ["0", "0.0025", "0.0050", "0.0075", "0.0100"]),
        (12345, True, ["0", "5k", "10k", "15k"]),
        (3.3e9, True, ["0", "1bn", "2bn", "3bn", "4bn"]),
    ],
)
def test_the_scale_has_round_steps_and_labels_that_suit_the_data(
    largest: float, whole: bool, labels: list[str]
) -> None:
    scale = nice_scale(largest, whole=whole)
    assert [tick_label(v, scale) for v in scale.values] == labels


def test_small_medians_are_not_every_tick_zero() -> None:
    """The median-days chart of a demo where the SMDT answered within minutes read "0.0" at every tick."""
    chart = bar_chart("t", ["RM1", "RDE"], [Series("Median days", "d", [0.0021, 0.0015])])
    labels = [t.label for t in chart.ticks]
    assert len(set(labels)) == len(labels), labels
    assert labels[0] == "0" and labels[-1] != "0"


def test_a_duration_chart_picks_the_unit_it_reads_best_in() -> None:
    assert duration_unit(9.5) == ("days", 1.0)
    assert duration_unit(0.25) == ("hours", 24.0)
    assert duration_unit(0.002) == ("minutes", 1440.0)
    assert duration_unit(0.00001) == ("seconds", 86400.0), "an SMDT that answered within a second"
    assert duration_unit(0) == ("seconds", 86400.0)


def test_bar_heights_are_proportional_and_the_target_line_fits_above_small_values() -> None:
    chart = bar_chart("t", ["2025", "2026"], [Series("Resections", "r", [50, 100])], target=200, target_label="IOG")
    short, tall = chart.bars
    assert tall.height == pytest.approx(2 * short.height, abs=0.2)
    assert tall.y + tall.height == pytest.approx(chart.baseline)
    assert chart.target is not None
    assert TOP <= chart.target.y < tall.y, "the target (200) is above the tallest bar (100) and on the chart"
    assert chart.target.y == pytest.approx(TOP), "the scale ends at the target"
    assert [t.label for t in chart.ticks] == ["0", "50", "100", "150", "200"]
    assert chart.baseline == HEIGHT - 40
    assert [b.label for b in chart.bars] == ["50", "100"], "every bar carries its figure"


def test_one_resection_against_a_target_of_200_is_a_visible_bar_with_its_figure() -> None:
    chart = bar_chart("t", ["2026"], [Series("Resections", "r", [1])], target=200)
    [bar] = chart.bars
    assert bar.height >= MIN_BAR and bar.label == "1"
    zero = bar_chart("t", ["2026"], [Series("Resections", "r", [0])], target=200).bars[0]
    assert zero.height == 0 and zero.label == "0", "a zero is written, not drawn"


def test_series_sit_side_by_side_and_a_missing_value_leaves_a_gap() -> None:
    chart = bar_chart("t", ["RM1", "RDE"], [Series("Referrals", "a", [4, 2]), Series("Median days", "b", [None, 3.5])])
    assert [(b.category, b.series) for b in chart.bars] == [
        ("RM1", "Referrals"),
        ("RDE", "Referrals"),
        ("RDE", "Median days"),
    ]
    rde_referrals, rde_days = chart.bars[1], chart.bars[2]
    assert rde_days.x > rde_referrals.x + rde_referrals.width - 0.1
    assert chart.categories[0].x < chart.categories[1].x


def test_organisation_names_wrap_whole_inside_their_slot_and_the_chart_grows_to_hold_them() -> None:
    names = [
        "Norfolk and Norwich University Hospitals NHS Foundation Trust (RM1)",
        "Royal Devon University Healthcare NHS Foundation Trust (RDE)",
        "North West Anglia NHS Foundation Trust (Peterborough, Hinchingbrooke) (RGN)",
        "Mid and South Essex NHS Foundation Trust (RAJ)",
        "Ipswich (RGR)",
    ]
    chart = bar_chart("t", names, [Series("Referrals", "a", [4, 2, 1, 0, 3])])
    slot = (chart.plot_right - chart.plot_left) / len(names)
    for label, name in zip(chart.categories, names, strict=True):
        assert " ".join(label.lines) == name, "the whole name with its code, never cut short nor inside a word"
        assert all(len(line) * CATEGORY_CHAR <= slot or " " not in line for line in label.lines), label.lines
    most = max(len(label.lines) for label in chart.categories)
    assert most > 1 and chart.height == HEIGHT + 14 * (most - 1), "taller by a line for each line more"
    years = bar_chart("t", ["2025", "2026"], [Series("Resections", "r", [1, 2])])
    assert [label.lines for label in years.categories] == [["2025"], ["2026"]] and years.height == HEIGHT


def test_bad_series_are_refused() -> None:
    with pytest.raises(ValueError, match="values for"):
        bar_chart("t", ["a", "b"], [Series("s", "c", [1])])
    with pytest.raises(ValueError, match="negative"):
        bar_chart("t", ["a"], [Series("s", "c", [-1])])
    with pytest.raises(ValueError, match="finite"):
        bar_chart("t", ["a"], [Series("s", "c", [math.inf])])


def test_an_empty_chart_has_a_scale_and_no_bars() -> None:
    chart = bar_chart("t", [], [Series("s", "c", [])])
    assert chart.bars == [] and [t.label for t in chart.ticks] == ["0", "1"]


AWKWARD = st.one_of(
    st.just(0.0),
    st.integers(min_value=0, max_value=10**9).map(float),
    st.floats(min_value=1e-9, max_value=1e9, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), AWKWARD), min_size=1, max_size=8),
    target=st.one_of(st.none(), AWKWARD),
)
def test_any_data_gives_distinct_short_ticks_a_scale_above_it_and_visible_bars(
    values: list[float | None], target: float | None
) -> None:
    chart = bar_chart("t", [str(i) for i in range(len(values))], [Series("s", "c", values)], target=target)
    labels = [t.label for t in chart.ticks]
    assert len(set(labels)) == len(labels), labels
    assert all(len(label) <= 7 for label in labels), labels
    assert 2 <= len(chart.ticks) <= 6
    ys = [t.y for t in chart.ticks]
    assert ys == sorted(ys, reverse=True) and ys[0] == pytest.approx(chart.baseline) and ys[-1] == pytest.approx(TOP)
    measured = [v for v in values if v is not None]
    assert len(chart.bars) == len(measured), "a missing value is a gap, every measured one a bar"
    for bar, value in zip(chart.bars, measured, strict=True):
        assert bar.y >= TOP - 0.1, "no bar leaves the chart"
        assert bar.y + bar.height == pytest.approx(chart.baseline, abs=0.11)
        assert (bar.height >= MIN_BAR) if value > 0 else bar.height == 0
        assert bar.label, "every bar carries its figure"
    if chart.target is not None:
        assert TOP - 0.1 <= chart.target.y <= chart.baseline
