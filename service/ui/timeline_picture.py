"""The episode's timeline as a picture (server-rendered SVG, drawn by `templates/episode/timeline.svg`):
a lane per organisation, an arrow per message from sender to recipient, a mark at each arrow's head for
its business acknowledgement, and the band of clinical responsibility on the holder's lane, coloured by
organisation as it moves. Messages are spaced evenly in the order they arrived (time is in the labels and
the text alternative), so a busy hour stays legible beside a quiet month.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from service.store.episode_reads import TimelineEntry
from service.store.episodes import LedgerEntry

WIDTH = 1100
LEFT = 190
RIGHT = 30
TOP = 40
LANE_GAP = 90
BAND_HEIGHT = 16
PALETTE = ("#005eb8", "#007f3b", "#330072", "#ffb81c", "#7c2855", "#00a499", "#ed8b00")
KIND_WORDS = {
    "referral": "Referral",
    "withdrawal": "Referral withdrawn",
    "outcome-accepted": "SMDT: accepted",
    "outcome-declined": "SMDT: declined",
    "outcome-more-information-needed": "SMDT: more information",
    "transfer-requested": "Transfer of care",
    "transfer-accepted": "Transfer accepted",
    "transfer-rejected": "Transfer rejected",
    "discharge-summary": "Discharge summary",
    "acknowledgement": "Acknowledgement",
}


@dataclass(frozen=True)
class Lane:
    ods: str
    y: int
    colour: str


@dataclass(frozen=True)
class Arrow:
    x: int
    y1: int
    y2: int
    label: str
    at: datetime
    acknowledged_at: datetime | None
    sender: str
    recipient: str
    is_acknowledgement: bool


@dataclass(frozen=True)
class Band:
    x1: int
    x2: int
    y: int
    colour: str
    ods: str
    clinician: str
    since: datetime


@dataclass(frozen=True)
class TimelinePicture:
    width: int
    height: int
    lanes: list[Lane]
    arrows: list[Arrow]
    bands: list[Band]
    band_height: int = BAND_HEIGHT


def kind_words(kind: str) -> str:
    return KIND_WORDS.get(kind, kind.replace("-", " ").capitalize())


def draw_timeline(
    timeline: list[TimelineEntry], ledger: list[LedgerEntry], referrer: str, centre: str
) -> TimelinePicture:
    order = [referrer, centre]
    for ods in [o for t in timeline for o in (t.sender_ods, t.recipient_ods)] + [e.ods for e in ledger]:
        if ods not in order:
            order.append(ods)
    lanes = [Lane(ods, TOP + 30 + i * LANE_GAP, PALETTE[i % len(PALETTE)]) for i, ods in enumerate(order)]
    lane_of = {lane.ods: lane for lane in lanes}
    step = (WIDTH - LEFT - RIGHT) / max(len(timeline), 1)
    x_of: dict[UUID, int] = {t.message_id: int(LEFT + step * (i + 0.5)) for i, t in enumerate(timeline)}
    arrows = [
        Arrow(
            x_of[t.message_id],
            lane_of[t.sender_ods].y,
            lane_of[t.recipient_ods].y,
            kind_words(t.kind),
            t.at,
            t.acknowledged_at,
            t.sender_ods,
            t.recipient_ods,
            t.kind == "acknowledgement",
        )
        for t in timeline
    ]
    bands = []
    for i, entry in enumerate(ledger):
        start = x_of.get(entry.caused_by, LEFT)
        end = x_of.get(ledger[i + 1].caused_by, WIDTH - RIGHT) if i + 1 < len(ledger) else WIDTH - RIGHT
        lane = lane_of[entry.ods]
        bands.append(
            Band(start, max(end, start + 4), lane.y, lane.colour, entry.ods, entry.clinician_name, entry.since)
        )
    height = TOP + 30 + (len(lanes) - 1) * LANE_GAP + 50
    return TimelinePicture(WIDTH, height, lanes, arrows, bands)
