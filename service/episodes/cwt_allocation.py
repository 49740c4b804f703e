"""Breach allocation for a two-provider cancer pathway (CONTRACT section 9; NHS England's National Cancer Breach
Allocation Guidance): the days in each phase, the three targets met or not, and which provider is accountable.

Pure: dates in, an `Allocation` out, no clock and no database. Days are calendar-date differences less the
waiting-time adjustments of the phase (the referring provider's before the transfer, the treating provider's
after it). `parse_pathway` reads the JSON item that `handover cwt allocate` takes and names every bad field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

TRANSFER_TARGET_DAYS = 38
TREATING_TARGET_DAYS = 24
PATHWAY_TARGET_DAYS = 62

SOLO = "solo"
PENDING = "pending"
NO_IPT_DATE = "no-ipt-date"
SHARED = "shared"
TREATING = "treating"
REFERRING = "referring"
RULES = (SOLO, PENDING, NO_IPT_DATE, SHARED, TREATING, REFERRING)
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class Pathway:
    """One patient's pathway across a referring and a treating provider (ODS codes)."""

    id: str
    clock_start: date
    ipt_received_date: date | None
    treatment_date: date | None
    referring: str
    treating: str
    adjustment_days_referring: int = 0
    adjustment_days_treating: int = 0


@dataclass(frozen=True)
class Allocation:
    """The rule that applied, each provider's share of the pathway (ODS code -> share; empty while pending), the
    days in each phase, and the targets met. A day count or flag is None while a date it needs is unknown."""

    rule: str
    shares: dict[str, float]
    d38: int | None
    d24: int | None
    d62: int | None
    transferred_by_day_38: bool | None
    treated_within_24_days: bool | None
    met_62_days: bool | None

    def as_json(self) -> dict[str, Any]:
        return {
            "allocation_rule": self.rule,
            "allocation": dict(self.shares),
            "d38": self.d38,
            "d24": self.d24,
            "d62": self.d62,
            "transferred_by_day_38": self.transferred_by_day_38,
            "treated_within_24_days": self.treated_within_24_days,
            "met_62_days": self.met_62_days,
        }


def allocate(p: Pathway) -> Allocation:
    """Allocate `p` by the contract's table. Never refuses: dates out of order give negative days (the CLI and the
    intake refuse such dates before they get here)."""
    ipt, treated = p.ipt_received_date, p.treatment_date
    d38 = (ipt - p.clock_start).days - p.adjustment_days_referring if ipt is not None else None
    d24 = (treated - ipt).days - p.adjustment_days_treating if ipt is not None and treated is not None else None
    d62 = (
        (treated - p.clock_start).days - p.adjustment_days_referring - p.adjustment_days_treating
        if treated is not None
        else None
    )
    by_38 = d38 <= TRANSFER_TARGET_DAYS if d38 is not None else None
    within_24 = d24 <= TREATING_TARGET_DAYS if d24 is not None else None
    met_62 = d62 <= PATHWAY_TARGET_DAYS if d62 is not None else None
    rule = _rule(p, by_38, within_24, met_62)
    return Allocation(
        rule=rule,
        shares=_shares(rule, p),
        d38=d38,
        d24=d24,
        d62=d62,
        transferred_by_day_38=by_38,
        treated_within_24_days=within_24,
        met_62_days=met_62,
    )


def _rule(p: Pathway, by_38: bool | None, within_24: bool | None, met_62: bool | None) -> str:
    if p.referring == p.treating:
        return SOLO
    if p.treatment_date is None:
        return PENDING
    if p.ipt_received_date is None:
        return NO_IPT_DATE
    if met_62:
        return SHARED if by_38 else TREATING
    if by_38 != within_24:  # by day 38 but treated late, or transferred late but treated within 24 days
        return TREATING if by_38 else REFERRING
    return SHARED


def _shares(rule: str, p: Pathway) -> dict[str, float]:
    if rule == PENDING:
        return {}
    if rule in (SOLO, TREATING):
        return {p.treating: 1.0}
    if rule == REFERRING:
        return {p.referring: 1.0}
    return {p.referring: 0.5, p.treating: 0.5}


class PathwayInputError(ValueError):
    """One bad item of `handover cwt allocate`'s input: which item (`item_id`, or its position) and which field."""

    def __init__(self, item_id: str, field: str, problem: str) -> None:
        super().__init__(f"{item_id}: {field}: {problem}")
        self.item_id = item_id
        self.field = field
        self.problem = problem


def parse_pathway(item: object, position: int) -> Pathway:
    """The `Pathway` an input item describes. Refuses (PathwayInputError, first bad field named) a non-object, a
    missing or mistyped field, a date that is not YYYY-MM-DD, a negative adjustment, and dates out of order: an
    IPT received date or a treatment date before the clock start, a treatment date before the IPT received date."""
    label = f"item {position}"
    if not isinstance(item, Mapping):
        raise PathwayInputError(label, "item", "is not a JSON object")
    raw_id = item.get("id")
    if not isinstance(raw_id, str) or not raw_id:
        raise PathwayInputError(label, "id", "missing or not a non-empty string")
    label = raw_id
    clock_start = _date(item, "clock_start", label, required=True)
    assert clock_start is not None
    ipt = _date(item, "ipt_received_date", label, required=False)
    treated = _date(item, "treatment_date", label, required=False)
    referring = _ods(item, "referring", label)
    treating = _ods(item, "treating", label)
    adjust_referring = _days(item, "adjustment_days_referring", label)
    adjust_treating = _days(item, "adjustment_days_treating", label)
    if ipt is not None and ipt < clock_start:
        raise PathwayInputError(label, "ipt_received_date", "is before the clock_start")
    if treated is not None and treated < clock_start:
        raise PathwayInputError(label, "treatment_date", "is before the clock_start")
    if treated is not None and ipt is not None and treated < ipt:
        raise PathwayInputError(label, "treatment_date", "is before the ipt_received_date")
    return Pathway(
        id=raw_id,
        clock_start=clock_start,
        ipt_received_date=ipt,
        treatment_date=treated,
        referring=referring,
        treating=treating,
        adjustment_days_referring=adjust_referring,
        adjustment_days_treating=adjust_treating,
    )


def _date(item: Mapping[str, object], field: str, label: str, *, required: bool) -> date | None:
    if field not in item:
        raise PathwayInputError(label, field, "missing")
    value = item[field]
    if value is None and not required:
        return None
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise PathwayInputError(label, field, "not a date YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise PathwayInputError(label, field, "not a date YYYY-MM-DD") from None


def _ods(item: Mapping[str, object], field: str, label: str) -> str:
    value = item.get(field)
    if not isinstance(value, str) or not value.strip():
        raise PathwayInputError(label, field, "missing or not an ODS code")
    return value


def _days(item: Mapping[str, object], field: str, label: str) -> int:
    value = item.get(field, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PathwayInputError(label, field, "not a whole number of days, 0 or more")
    return value
