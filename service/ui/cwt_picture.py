"""The episode page's Cancer Waiting Times section: the three phases of the pathway drawn against their targets
(referring trust to day 38, the centre's 24 days, the whole 62 days) and the breach allocation in words. Pure:
numbers for `templates/episode/cwt.html`, from the allocation the API shows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.episodes.cwt_allocation import Allocation, allocate
from service.episodes.cwt_view import cwt_pathway, cwt_view
from service.episodes.cwt_words import NameOf, describe_allocation
from service.store.cwt import CwtDates

WIDTH, LEFT, ROW = 640, 190, 34
TARGETS = (("Referring trust: to the transfer", 38), ("Centre: transfer to treatment", 24), ("Whole pathway", 62))


@dataclass(frozen=True)
class Bar:
    label: str
    target: int
    days: int | None  # None: the phase has not ended yet
    y: int
    target_width: float
    days_width: float
    met: bool | None

    @property
    def label_x(self) -> float:
        """Where the "n of target days" label goes: past the longer of the two bars."""
        return LEFT + max(self.target_width, self.days_width) + 8


@dataclass(frozen=True)
class CwtPicture:
    bars: list[Bar]
    width: int
    height: int
    scale_days: int
    words: str


def draw_cwt(allocation: Allocation, days_so_far: int, words: str) -> CwtPicture:
    """The picture for one pathway; `days_so_far` is today's day of the pathway (for phases still running), `words`
    the allocation in words (service/episodes/cwt_words.py, the governance report's sentence)."""
    phases = (allocation.d38, allocation.d24, allocation.d62)
    flags = (allocation.transferred_by_day_38, allocation.treated_within_24_days, allocation.met_62_days)
    scale = max(62, days_so_far, *(d for d in phases if d is not None)) + 4
    per_day = (WIDTH - LEFT - 130) / scale  # room after the longer bar for its label
    bars = [
        Bar(label, target, days, 20 + i * ROW, target * per_day, max(days or 0, 0) * per_day, met)
        for i, ((label, target), days, met) in enumerate(zip(TARGETS, phases, flags, strict=True))
    ]
    return CwtPicture(bars, WIDTH, 20 + len(bars) * ROW + 10, scale, words)


def cwt_section(
    episode_id: str, parties: tuple[str, str], dates: CwtDates, days_so_far: int, name_of: NameOf
) -> dict[str, Any] | None:
    """templates/episode/cwt.html's context: the dates, the API's view, the picture and the governance report's
    sentence; None off a cancer pathway. `parties`: the referring and the treating provider (ODS codes)."""
    referring, treating = parties
    pathway = cwt_pathway(episode_id, referring, treating, dates)
    if pathway is None:
        return None
    allocation = allocate(pathway)
    words = describe_allocation(pathway, allocation, name_of)
    view = cwt_view(dates, allocation)
    return {"dates": dates, "view": view, "picture": draw_cwt(allocation, days_so_far, words)}
