"""The episode page's Cancer Waiting Times section: the three phases of the pathway drawn against their targets
(referring trust to day 38, the centre's 24 days, the whole 62 days) and the breach allocation in words. Pure:
numbers and sentences for `templates/episode/cwt.html`, from the allocation the API shows."""

from __future__ import annotations

from dataclasses import dataclass

from service.episodes.cwt_allocation import Allocation

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


@dataclass(frozen=True)
class CwtPicture:
    bars: list[Bar]
    width: int
    height: int
    scale_days: int
    words: str


def draw_cwt(allocation: Allocation, days_so_far: int) -> CwtPicture:
    """The picture for one pathway; `days_so_far` is today's day of the pathway (for phases still running)."""
    phases = (allocation.d38, allocation.d24, allocation.d62)
    flags = (allocation.transferred_by_day_38, allocation.treated_within_24_days, allocation.met_62_days)
    scale = max(62, days_so_far, *(d for d in phases if d is not None)) + 4
    per_day = (WIDTH - LEFT - 20) / scale
    bars = [
        Bar(label, target, days, 20 + i * ROW, target * per_day, max(days or 0, 0) * per_day, met)
        for i, ((label, target), days, met) in enumerate(zip(TARGETS, phases, flags, strict=True))
    ]
    return CwtPicture(bars, WIDTH, 20 + len(bars) * ROW + 10, scale, allocation_words(allocation))


_FIXED = {
    "solo": "One trust referred and treated: the whole pathway is its own.",
    "no-ipt-date": "Shared equally: the hub holds no IPT received date for this pathway, so neither trust can show "
    "when the transfer happened.",
}


def allocation_words(a: Allocation) -> str:
    """The allocation as a sentence a CWT lead would write."""
    if a.rule in _FIXED:
        return _FIXED[a.rule]
    by_38 = "by" if a.transferred_by_day_38 else "after"
    transfer = f"the transfer reached the centre on day {a.d38}, {by_38} day 38" if a.d38 is not None else ""
    if a.rule == "pending":
        return "Not treated yet, so nothing is allocated" + (f"; {transfer}." if transfer else ".")
    treating = f"the centre treated in {a.d24} days, {'within' if a.treated_within_24_days else 'more than'} 24"
    met = f"The pathway met the 62-day standard (treated on day {a.d62})"
    sentences = {
        (True, "shared"): f"{met} and {transfer}: shared equally between the referring trust and the centre.",
        (True, "treating"): f"{met}; {transfer}, so the pathway counts to the treating trust (the centre).",
        (False, "referring"): f"Breach allocated to the referring trust: {transfer}, and {treating}.",
        (False, "treating"): f"Breach allocated to the treating trust (the centre): {transfer}, but {treating}.",
    }
    return sentences.get((bool(a.met_62_days), a.rule), f"Breach shared equally: {transfer}, and {treating}.")
