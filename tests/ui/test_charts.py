"""The bar chart layout: scale, bar heights, gaps for missing values, and a target line that always fits."""

from __future__ import annotations

import pytest

from service.ui.charts import HEIGHT, TOP, Series, bar_chart, nice_ceiling


@pytest.mark.parametrize(
    ("value", "ceiling"), [(0, 1), (1, 1), (3, 5), (7, 10), (11, 20), (180, 200), (201, 250), (0.3, 0.5)]
)
def test_the_scale_ends_at_a_round_number_at_or_above_the_largest_value(value: float, ceiling: float) -> None:
    assert nice_ceiling(value) == ceiling


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


def test_bad_series_are_refused() -> None:
    with pytest.raises(ValueError, match="values for"):
        bar_chart("t", ["a", "b"], [Series("s", "c", [1])])
    with pytest.raises(ValueError, match="negative"):
        bar_chart("t", ["a"], [Series("s", "c", [-1])])


def test_an_empty_chart_has_a_scale_and_no_bars() -> None:
    chart = bar_chart("t", [], [Series("s", "c", [])])
    assert chart.bars == [] and len(chart.ticks) == 5
