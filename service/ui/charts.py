"""Bar charts for the staff pages as geometry: where each bar, tick and target line goes in an SVG viewBox.

Pure arithmetic, no markup: the template `charts/bar_chart.html` draws what `bar_chart` lays out (so the
autoescaping template engine writes every label). Bars of several series sit side by side per category; an
optional target (e.g. the IOG's 200 resections a year) is drawn as a line across the chart and always fits on
the scale. Missing values (None) leave a gap, never a zero-height bar that reads as "none"; a zero is a bar of no
height with its "0" written above it. The scale's steps are round (1, 2, 2.5, 5 x a power of ten, whole for
counts) and its labels always differ; a small value keeps a visible bar and every bar carries its figure.
Category labels are words (an organisation by its name with its code beside, not the code alone): each wraps onto
as many lines as its slot needs, between words only, and the chart grows taller to hold them, never cutting a name
short.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

WIDTH, HEIGHT = 640, 280
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 24, 40
MIN_BAR = 3.0  # the least height of a bar above nothing, in viewBox units: 1 of 200 is still seen
MIN_LABELLED_BAR = 12.0  # narrower bars leave their figure to the tooltip and the table
CATEGORY_CHAR = 6.0  # a character's width at the category labels' 12 px (Arial averages under 6)
CATEGORY_LINE = 14  # the height of one more line of a category label


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
    label: str  # the figure written above the bar ("" when the bar is too narrow to carry it)
    label_x: float


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class CategoryLabel:
    x: float
    label: str
    lines: list[str]  # the label wrapped to its slot's width


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


@dataclass(frozen=True)
class Scale:
    """A value axis from 0 to `top` in `step`s; `decimals` is how many places the tick labels need to differ."""

    top: float
    step: float
    decimals: int

    @property
    def values(self) -> list[float]:
        count = round(self.top / self.step)
        return [float(Decimal(repr(self.step)) * n) for n in range(count + 1)]


def nice_scale(largest: float, *, whole: bool = False, intervals: int = 4) -> Scale:
    """The scale for values up to `largest`: about `intervals` steps of 1, 2, 2.5 or 5 times a power of ten, the
    top the first step at or above `largest`. `whole`: counts, so no step below 1 and none of 2.5 (no "0.5
    referrals"). Nothing to show (0, or not a finite number) gets one step of 1."""
    if not math.isfinite(largest) or largest <= 0:
        return Scale(1.0, 1.0, 0)
    exponent = math.floor(math.log10(largest / intervals))
    step = Decimal(0)
    for power in (exponent, exponent + 1):
        for multiplier in ("1", "2", "2.5", "5"):
            candidate = Decimal(multiplier).scaleb(power)
            if whole and (candidate < 1 or candidate != candidate.to_integral_value()):
                continue
            if candidate * intervals >= Decimal(repr(largest)):
                step = candidate
                break
        if step:
            break
    if not step:  # whole numbers below one step of 1
        step = Decimal(1)
    count = math.ceil(Decimal(repr(largest)) / step)
    decimals = max(0, -int(step.normalize().as_tuple().exponent))
    return Scale(float(step * count), float(step), decimals)


def tick_label(value: float, scale: Scale) -> str:
    """A tick's label, short enough for the axis: "2,500", "0.25", "15k", "2.5M"; ticks of one scale differ."""
    if not value:
        return "0"
    for size, suffix, from_top in ((1e9, "bn", 1e9), (1e6, "M", 1e6), (1e3, "k", 1e4)):
        if scale.top >= from_top:
            decimals = max(0, -int(Decimal(repr(scale.step / size)).normalize().as_tuple().exponent))
            return f"{value / size:.{min(decimals, 3)}f}{suffix}"
    if scale.decimals > 4:  # a step below 0.0001: three significant figures tell n x step apart
        return f"{value:.3g}"
    return f"{value:,.{scale.decimals}f}"


def value_label(value: float) -> str:
    """A bar's own figure, written above it: whole numbers as they are, fractions to two significant places."""
    if value == int(value):
        return f"{value / 1e6:.3g}M" if value >= 1e6 else f"{int(value):,}"
    if value >= 10:
        return f"{value:,.0f}"
    if value < 0.001:
        return "<0.001"
    return f"{value:.2g}"


def bar_chart(
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    target: float | None = None,
    target_label: str = "",
    ticks: int = 4,
) -> BarChart:
    """Lay out `series` over `categories` (each series must have one value per category). The scale suits the
    data (whole steps when every value is whole); a value above nothing is never thinner than `MIN_BAR`, and each
    bar carries its figure, so one resection against a target of 200 still shows."""
    for one in series:
        if len(one.values) != len(categories):
            raise ValueError(f"series {one.name!r} has {len(one.values)} values for {len(categories)} categories")
    measured = [v for one in series for v in one.values if v is not None]
    if any(not math.isfinite(v) or v < 0 for v in measured):
        raise ValueError("bar values must be finite and not negative")
    whole = all(v == int(v) for v in measured) and (target is None or target == int(target))
    scale = nice_scale(max([*measured, target or 0.0, 0.0]), whole=whole, intervals=ticks)
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    baseline = float(TOP + plot_height)

    def y_of(value: float) -> float:
        return baseline - plot_height * value / scale.top

    slot = plot_width / max(len(categories), 1)
    per_line = max(6, int(slot / CATEGORY_CHAR))
    group = slot * 0.7
    bar_width = group / max(len(series), 1)
    bars: list[Bar] = []
    labels: list[CategoryLabel] = []
    for index, category in enumerate(categories):
        start = LEFT + index * slot + (slot - group) / 2
        lines = textwrap.wrap(category, per_line, break_long_words=False, break_on_hyphens=False) or [category]
        labels.append(CategoryLabel(round(LEFT + index * slot + slot / 2, 1), category, lines))
        for position, one in enumerate(series):
            value = one.values[index]
            if value is None:
                continue
            height = 0.0 if value == 0 else max(MIN_BAR, baseline - y_of(value))
            x = start + position * bar_width
            bars.append(
                Bar(
                    round(x, 1),
                    round(baseline - height, 1),
                    round(bar_width * 0.9, 1),
                    round(height, 1),
                    value,
                    one.name,
                    one.css_class,
                    category,
                    value_label(value) if bar_width * 0.9 >= MIN_LABELLED_BAR else "",
                    round(x + bar_width * 0.45, 1),
                )
            )
    axis = [Tick(round(y_of(v), 1), tick_label(v, scale)) for v in scale.values]
    line = None if target is None else TargetLine(round(y_of(target), 1), target_label or value_label(target))
    height = HEIGHT + CATEGORY_LINE * (max((len(label.lines) for label in labels), default=1) - 1)
    return BarChart(title, WIDTH, height, LEFT, WIDTH - RIGHT, baseline, bars, axis, labels, list(series), line)
