"""The rules for an episode's Cancer Waiting Times dates, as pure logic: what a message adds to them, or why it is
refused (CONTRACT section 9).

- The IPT received date is the Europe/London date on which the hub accepted the cancer pathway referral that
  completed the data set: the first such referral, or, after a `more-information-needed` SMDT outcome (which says
  the data set was not complete and clears the date), the referral sent again with the information.
- Each date a message gives is recorded once: the first one recorded stands and a later, different one is refused
  (`CwtConflict`, answered 422 `invalid-transition`). Adjustment days are 0 until a message gives more; once
  non-zero, a different number is refused.
- Dates out of order are refused too: a treatment date before the clock start or the IPT received date, or a
  treatment or decision date after the day the message was accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import TypeVar
from uuid import UUID

from service.episodes.cwt_reading import CwtItems, london_date
from service.episodes.machine import Kind
from service.store.cwt import CwtDates

T = TypeVar("T")


class CwtConflict(ValueError):  # noqa: N818 - read as "a CWT date conflict" at the call site
    """A message's CWT date contradicts the episode's, or is out of order; the text says which."""


@dataclass(frozen=True)
class CwtMessage:
    """What the tracker knows of the message beside its items."""

    kind: Kind
    changed: bool  # whether it moved the episode's state
    reopened: bool  # a referral sent again after `more-information-needed`
    message_id: UUID
    accepted_at: datetime


def next_cwt_dates(current: CwtDates, items: CwtItems, message: CwtMessage) -> CwtDates:
    """The episode's CWT dates after `message`, or CwtConflict."""
    dates = current
    completes = dates.ipt_received_date is None or message.reopened
    if message.kind is Kind.REFERRAL and dates.clock_start is not None and completes:
        dates = replace(
            dates, ipt_received_date=london_date(message.accepted_at), ipt_received_message_id=message.message_id
        )
    if message.kind is Kind.OUTCOME_MORE_INFORMATION and message.changed:
        dates = replace(dates, ipt_received_date=None, ipt_received_message_id=None)
    dates = replace(
        dates,
        decision_to_refer_date=_once("decision to refer date", dates.decision_to_refer_date, items.decision_to_refer),
        faster_diagnosis_date=_once("Faster Diagnosis end date", dates.faster_diagnosis_date, items.faster_diagnosis),
        decision_to_treat_date=_once("decision to treat date", dates.decision_to_treat_date, items.decision_to_treat),
        treatment_date=_once("first definitive treatment date", dates.treatment_date, items.treatment_date),
        treatment_opcs4=_once("first definitive treatment (OPCS-4)", dates.treatment_opcs4, items.treatment_opcs4),
        adjustment_days_referring=_days(
            "referring trust's adjustment days", dates.adjustment_days_referring, items.adjustment_days_referring
        ),
        adjustment_days_treating=_days(
            "centre's adjustment days", dates.adjustment_days_treating, items.adjustment_days_treating
        ),
    )
    _check_order(dates, items, london_date(message.accepted_at))
    return dates


def _once(name: str, recorded: T | None, given: T | None) -> T | None:
    if given is None or recorded is None or recorded == given:
        return recorded if recorded is not None else given
    raise CwtConflict(
        f"the episode already records a different {name}; the first one recorded stands (a correction is a "
        "matter for the trusts' CWT leads, not a new message)"
    )


def _days(name: str, recorded: int, given: int | None) -> int:
    if given is None or recorded in (given, 0):
        return recorded if given is None else given
    raise CwtConflict(f"the episode already records a different {name}; the first one recorded stands")


def _check_order(dates: CwtDates, items: CwtItems, today: date) -> None:
    treated = items.treatment_date
    if treated is not None:
        if treated > today:
            raise CwtConflict("the first definitive treatment date is after the day the message was sent")
        if dates.clock_start is not None and treated < dates.clock_start:
            raise CwtConflict("the first definitive treatment date is before the cancer pathway start date")
        if dates.ipt_received_date is not None and treated < dates.ipt_received_date:
            raise CwtConflict("the first definitive treatment date is before the IPT received date")
    for name, given in (("decision to treat", items.decision_to_treat), ("decision to refer", items.decision_to_refer)):
        if given is not None and given > today:
            raise CwtConflict(f"the {name} date is after the day the message was sent")
