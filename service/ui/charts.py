"""Bar charts for the staff pages as geometry: where each bar, tick and target line goes in an SVG viewBox.

Pure arithmetic, no markup: the template `charts/bar_chart.html` draws what `bar_chart` lays out (so the
autoescaping template engine writes every label). Bars of several series sit side by side per category; an
optional target (e.g. the IOG's 200 resections a year) is drawn as a line across the chart and always fits on
the scale. Missing values (None) leave a gap, never a zero-height bar that reads as "none".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH, HEIGHT = 640, 280
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 16, 40


@dataclass(frozen=True)
class Series:
    """One colour of bars: its name (the legend), a CSS class, and a value per category (None: not measured)."""

    name: str
    css_class: str
    values: Sequence[float | None]


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: float
    series: str
    css_class: str
    category: str


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class CategoryLabel:
    x: float
    label: str


@dataclass(frozen=True)
class TargetLine:
    y: float
    label: str


@dataclass(frozen=True)
class BarChart:
    title: str
    width: int
    height: int
    plot_left: int
    plot_right: int
    baseline: float
    bars: list[Bar]
    ticks: list[Tick]
    categories: list[CategoryLabel]
    series: list[Series]
    target: TargetLine | None


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5 or 5 times a power of ten that is at least `value` (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def _label(value: float) -> str:
    return f"{value:g}" if value == int(value) or value >= 10 else f"{value:.1f}"


def bar_chart(
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    target: float | None = None,
    target_label: str = "",
    ticks: int = 4,
) -> BarChart:
    """Lay out `series` over `categories` (each series must have one value per category)."""
    for one in series:
        if len(one.values) != len(categories):
            raise ValueError(f"series {one.name!r} has {len(one.values)} values for {len(categories)} categories")
    measured = [v for one in series for v in one.values if v is not None]
    if any(v < 0 for v in measured):
        raise ValueError("bar values must not be negative")
    top = nice_ceiling(max([*measured, target or 0.0, 0.0]))
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    baseline = float(TOP + plot_height)

    def y_of(value: float) -> float:
        return baseline - plot_height * value / top

    slot = plot_width / max(len(categories), 1)
    group = slot * 0.7
    bar_width = group / max(len(series), 1)
    bars: list[Bar] = []
    labels: list[CategoryLabel] = []
    for index, category in enumerate(categories):
        start = LEFT + index * slot + (slot - group) / 2
        labels.append(CategoryLabel(round(LEFT + index * slot + slot / 2, 1), category))
        for position, one in enumerate(series):
            value = one.values[index]
            if value is None:
                continue
            y = y_of(value)
            bars.append(
                Bar(
                    round(start + position * bar_width, 1),
                    round(y, 1),
                    round(bar_width * 0.9, 1),
                    round(baseline - y, 1),
                    value,
                    one.name,
                    one.css_class,
                    category,
                )
            )
    scale = [Tick(round(y_of(top * n / ticks), 1), _label(top * n / ticks)) for n in range(ticks + 1)]
    line = None if target is None else TargetLine(round(y_of(target), 1), target_label or _label(target))
    return BarChart(title, WIDTH, HEIGHT, LEFT, WIDTH - RIGHT, baseline, bars, scale, labels, list(series), line)
