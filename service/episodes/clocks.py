"""Cancer pathway clocks for one episode: days since the pathway start, the day-38 inter-provider transfer target
and the day-62 treatment target, with breaches flagged.

This is the Python mirror of THE breach definition, service/store/pathway_breaches.py (its docstring states the
rules; tests/episodes/test_pathway_breaches.py holds the two to the same answers): the transfer is the IPT received
date, and until there is one day 38 is breached once today is past the target; treatment is the first definitive
treatment date, else the centre's first acceptance of clinical responsibility (the patient admitted for surgery),
and until either day 62 is breached once today is past the target; the targets move by the waiting-time
adjustments, so a flag here agrees with the breach allocation's (cwt_allocation.py). A clock without its date
stops when the episode closes (`stopped`). `today` and the dates are Europe/London.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from service.episodes.cwt_reading import london_date
from service.store.cwt import CwtDates

TRANSFER_TARGET_DAYS = 38
TREATMENT_TARGET_DAYS = 62


@dataclass(frozen=True)
class PathwayClock:
    start: date
    days_elapsed: int
    transfer_target: date
    treatment_target: date
    transferred_on: date | None  # the IPT received date; None while the referral is not yet complete
    treated_on: date | None
    transfer_breached: bool
    treatment_breached: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "days_elapsed": self.days_elapsed,
            "day_38_transfer_target": self.transfer_target.isoformat(),
            "day_62_treatment_target": self.treatment_target.isoformat(),
            "transferred_on": self.transferred_on.isoformat() if self.transferred_on else None,
            "treated_on": self.treated_on.isoformat() if self.treated_on else None,
            "day_38_breached": self.transfer_breached,
            "day_62_breached": self.treatment_breached,
        }


def pathway_clock(
    start: date, *, treated_at: datetime | None, today: date, cwt: CwtDates | None = None, stopped: bool = False
) -> PathwayClock:
    """`treated_at`: when the centre first accepted clinical responsibility (None if it has not); `today`: the
    Europe/London date; `stopped`: the episode closed (declined or withdrawn), so a clock without its date has
    stopped."""
    cwt = cwt or CwtDates()
    referring, treating = cwt.adjustment_days_referring, cwt.adjustment_days_treating
    transfer_target = start + timedelta(days=TRANSFER_TARGET_DAYS + referring)
    treatment_target = start + timedelta(days=TREATMENT_TARGET_DAYS + referring + treating)
    treated_on = cwt.treatment_date or (london_date(treated_at) if treated_at else None)
    transferred_on = cwt.ipt_received_date
    running = None if stopped else today
    transfer_end = transferred_on or running
    end = treated_on or running
    return PathwayClock(
        start=start,
        days_elapsed=((end or today) - start).days,
        transfer_target=transfer_target,
        treatment_target=treatment_target,
        transferred_on=transferred_on,
        treated_on=treated_on,
        transfer_breached=transfer_end is not None and transfer_end > transfer_target,
        treatment_breached=end is not None and end > treatment_target,
    )
