"""The episode's timeline as a picture (server-rendered SVG, drawn by `templates/episode/timeline.svg`): a lane per
organisation, named in full with its ODS code beside; an arrow per message from sender to recipient with a dot at
its head for the business acknowledgement (folded into the message it answers, never an arrow of its own); the
safety net's alerts as marks on the lanes they went to; the band of clinical responsibility, coloured by
organisation as it moves; a time axis giving each event's time since the referral and its date; and a legend.

Time runs left to right, and each gap between two events gets room that grows with its length (logarithmically),
so a busy hour stays legible beside a quiet month; the axis says it is not to scale. Labels are packed into rows
so that none overlaps another (widths are estimated generously), and organisation names wrap instead of being cut.
Events are named in the words of the one display-text table (`service.ui.display_text`), as on the rest of the page.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from uuid import UUID

from service.store.episode_reads import TimelineEntry
from service.store.episodes import LedgerEntry
from service.ui.acknowledgements import pair_acknowledgements
from service.ui.display_text import event_words
from service.ui.formatting import UK

WIDTH = 1100  # the least width; a long episode gets more
LEFT = 240  # the lane names' column
RIGHT = 40
TOP = 20
MIN_GAP = 84  # the least room between two events: wider than any axis label
LANE_GAP = 100
BAND_HEIGHT = 16
ROW = 18  # one row of labels
CHAR = 6.6  # a character's width at the labels' 11-12 px, generously (Arial averages under 6)
NAME_CHARS = 32  # characters of an organisation's name (bold) per line in the lanes' column
HUB = "hub"  # the sender of the safety net's alerts: not an organisation, so not a lane
PALETTE = ("#005eb8", "#007f3b", "#330072", "#ffb81c", "#7c2855", "#00a499", "#ed8b00")


@dataclass(frozen=True)
class Lane:
    ods: str
    y: int
    colour: str
    name_lines: list[str]  # "Name of the trust (ODS)", wrapped


@dataclass(frozen=True)
class Arrow:
    x: float
    y1: int
    y2: int
    label: str
    at: datetime
    acknowledged_at: datetime | None
    sender: str
    recipient: str
    is_acknowledgement: bool  # an acknowledgement whose message is not on this episode: drawn dashed


@dataclass(frozen=True)
class AlertMark:
    x: float
    ys: list[int]
    label: str
    at: datetime
    recipients: list[str]


@dataclass(frozen=True)
class Label:
    x: float  # the centre of the text
    y: float  # its baseline
    text: str
    left: float
    right: float
    leader_to: float  # the y where its leader line meets the arrow or mark
    alert: bool


@dataclass(frozen=True)
class Band:
    x1: float
    x2: float
    y: int
    colour: str
    ods: str
    clinician: str
    since: datetime


@dataclass(frozen=True)
class AxisTick:
    x: float
    since_referral: str
    date: str  # "7 Dec 2026" when the day differs from the tick before, else ""


@dataclass(frozen=True)
class LegendItem:
    x: float
    y: float
    symbol: str  # arrow | acknowledged | unacknowledged | band | alert | dashed
    text: str


@dataclass(frozen=True)
class TimelinePicture:
    width: int
    height: int
    lanes: list[Lane]
    arrows: list[Arrow]
    bands: list[Band]
    alerts: list[AlertMark] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    ticks: list[AxisTick] = field(default_factory=list)
    axis_y: int = 0
    legend: list[LegendItem] = field(default_factory=list)
    plot_left: int = LEFT
    plot_right: int = WIDTH - RIGHT
    band_height: int = BAND_HEIGHT


def since_referral(delta: timedelta | None) -> str:
    """An event's time after the first event (None: it is the first): "start", "+<1 s", "+40 s", "+35 min",
    "+4 h", "+1 day", "+14 days"."""
    if delta is None:
        return "start"
    seconds = max(0, int(delta.total_seconds()))
    if seconds == 0:
        return "+<1 s"
    if seconds < 60:
        return f"+{seconds} s"
    if seconds < 3600:
        return f"+{seconds // 60} min"
    if seconds < 86400:
        return f"+{seconds // 3600} h"
    days = seconds // 86400
    return f"+{days} day" if days == 1 else f"+{days} days"


def text_width(text: str) -> float:
    return len(text) * CHAR + 8


def pack_rows(spans: Sequence[tuple[float, float]], gap: float = 6) -> list[int]:
    """The row of each (left, right) span, spans taken in order, each in the first row where it clears the span
    before it by `gap`: no two spans in one row overlap."""
    ends: list[float] = []
    rows = []
    for left, right in spans:
        row = next((i for i, end in enumerate(ends) if end + gap <= left), len(ends))
        if row == len(ends):
            ends.append(right)
        else:
            ends[row] = right
        rows.append(row)
    return rows


def event_positions(times: Sequence[datetime], width: int) -> list[float]:
    """x of each event (in time order): at least MIN_GAP apart, the rest of the width shared out by the log of
    each gap in minutes, so that later is always further right and a longer wait gets more room."""
    if not times:
        return []
    weights = [0.0] + [math.log1p(max(0.0, (b - a).total_seconds()) / 60) for a, b in pairwise(times)]
    total = sum(weights)
    if total == 0:
        weights = [0.0] + [1.0] * (len(times) - 1)
        total = float(len(times) - 1) or 1.0
    free = width - LEFT - RIGHT - len(times) * MIN_GAP
    x = LEFT + MIN_GAP / 2
    positions = []
    for index, weight in enumerate(weights):
        if index:
            x += MIN_GAP + free * weight / total
        positions.append(round(x, 1))
    return positions


@dataclass(frozen=True)
class _Event:
    """One column of the picture: a message, or the safety net's alert to one or more organisations."""

    at: datetime
    text: str
    message: TimelineEntry | None
    recipients: tuple[str, ...]


def _events(timeline: list[TimelineEntry]) -> list[_Event]:
    """Messages (acknowledgements folded into the message they answer) and alerts (one per alert and moment,
    however many organisations it went to), in time order."""
    folded = pair_acknowledgements(timeline)
    events: list[_Event] = []
    alerts: dict[tuple[str, datetime], list[str]] = {}
    for entry in timeline:
        if entry.message_id in folded:
            continue
        if entry.sender_ods == HUB:
            alerts.setdefault((entry.kind, entry.at), []).append(entry.recipient_ods)
        else:
            events.append(_Event(entry.at, event_words(entry.kind), entry, (entry.recipient_ods,)))
    events += [_Event(at, event_words(kind), None, tuple(to)) for (kind, at), to in alerts.items()]
    return sorted(events, key=lambda e: e.at)  # stable: messages at one moment keep their order


def draw_timeline(
    timeline: list[TimelineEntry],
    ledger: list[LedgerEntry],
    referrer: str,
    centre: str,
    name_of: Callable[[str], str | None] = lambda ods: None,
) -> TimelinePicture:
    """Lay out the episode's timeline; `name_of(ods)` is the organisation's name (None: not in the registry)."""
    events = _events(timeline)
    order = [referrer, centre]
    for event in events:
        named = (event.message.sender_ods, *event.recipients) if event.message is not None else event.recipients
        order += [ods for ods in named if ods not in order]
    order += [e.ods for e in ledger if e.ods not in order]
    order = list(dict.fromkeys(order))

    width = max(WIDTH, LEFT + RIGHT + len(events) * MIN_GAP)
    xs = event_positions([e.at for e in events], width)
    spans = [_clamped(x, text_width(e.text), width) for x, e in zip(xs, events, strict=True)]
    rows = pack_rows(spans)
    lanes_top = TOP + (max(rows, default=-1) + 1) * ROW + 40
    lanes = [
        Lane(ods, lanes_top + i * LANE_GAP, PALETTE[i % len(PALETTE)], _name_lines(ods, name_of))
        for i, ods in enumerate(order)
    ]
    y_of = {lane.ods: lane.y for lane in lanes}
    arrows: list[Arrow] = []
    marks: list[AlertMark] = []
    labels: list[Label] = []
    x_of: dict[UUID, float] = {}
    for event, x, (left, right), row in zip(events, xs, spans, rows, strict=True):
        message = event.message
        if message is None:
            marks.append(
                AlertMark(x, [y_of[r] for r in event.recipients], event.text, event.at, list(event.recipients))
            )
            top = min(y_of[r] for r in event.recipients)
        else:
            x_of[message.message_id] = x
            arrows.append(
                Arrow(
                    x,
                    y_of[message.sender_ods],
                    y_of[message.recipient_ods],
                    event.text,
                    message.at,
                    message.acknowledged_at,
                    message.sender_ods,
                    message.recipient_ods,
                    message.kind == "acknowledgement",
                )
            )
            top = min(y_of[message.sender_ods], y_of[message.recipient_ods])
        labels.append(Label(x, TOP + row * ROW + 12, event.text, left, right, top - 12, message is None))
    axis_y = lanes[-1].y + max(50, 12 + 14 * len(lanes[-1].name_lines) + 20)  # below the last lane's name
    legend, bottom = _legend(axis_y + 56, width, alerts=bool(marks), dashed=any(a.is_acknowledgement for a in arrows))
    return TimelinePicture(
        width=width,
        height=int(bottom) + 12,
        lanes=lanes,
        arrows=arrows,
        bands=_bands(ledger, x_of, {lane.ods: lane for lane in lanes}, width),
        alerts=marks,
        labels=labels,
        ticks=_ticks([e.at for e in events], xs),
        axis_y=axis_y,
        legend=legend,
        plot_left=LEFT,
        plot_right=width - RIGHT,
    )


def _clamped(x: float, text_width: float, width: int) -> tuple[float, float]:
    """The span of a label centred on `x`, moved inside the plot if it would stick out of it."""
    left = min(max(x - text_width / 2, LEFT - 30), width - 4 - text_width)
    return round(left, 1), round(left + text_width, 1)


def _name_lines(ods: str, name_of: Callable[[str], str | None]) -> list[str]:
    """The lane's name, as the pages' `org` filter writes it: the name with the code beside, never the code alone."""
    name = name_of(ods) or "Organisation not in the registry"
    return textwrap.wrap(f"{name} ({ods})", NAME_CHARS, break_on_hyphens=False)


def _bands(ledger: list[LedgerEntry], x_of: dict[UUID, float], lane_of: dict[str, Lane], width: int) -> list[Band]:
    bands = []
    for i, entry in enumerate(ledger):
        start = x_of.get(entry.caused_by, LEFT)
        end = x_of.get(ledger[i + 1].caused_by, width - RIGHT) if i + 1 < len(ledger) else width - RIGHT
        lane = lane_of[entry.ods]
        bands.append(
            Band(start, max(end, start + 4), lane.y, lane.colour, entry.ods, entry.clinician_name, entry.since)
        )
    return bands


def _ticks(times: list[datetime], xs: list[float]) -> list[AxisTick]:
    ticks: list[AxisTick] = []
    shown = None
    for at, x in zip(times, xs, strict=True):
        day = at.astimezone(UK).date()
        since = since_referral(at - times[0] if ticks else None)
        ticks.append(AxisTick(x, since, "" if day == shown else f"{day.day} {day:%b %Y}"))
        shown = day
    return ticks


LEGEND = (
    ("arrow", "Message, from sender to recipient"),
    ("acknowledged", "Acknowledged by the recipient"),
    ("unacknowledged", "Not acknowledged yet"),
    ("band", "Clinically responsible"),
)


def _legend(top: float, width: int, *, alerts: bool, dashed: bool) -> tuple[list[LegendItem], float]:
    """The legend's items from `top` down, wrapped to the width; and where it ends."""
    wanted = list(LEGEND)
    if alerts:
        wanted.append(("alert", "Safety-net alert"))
    if dashed:
        wanted.append(("dashed", "Acknowledgement of a message not on this episode"))
    items = []
    x, y = 10.0, top
    for symbol, text in wanted:
        size = 34 + text_width(text) + 16
        if x + size > width - 10 and x > 10:
            x, y = 10.0, y + 24
        items.append(LegendItem(x, y, symbol, text))
        x += size
    return items, y + 16
