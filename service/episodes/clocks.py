"""Cancer pathway clocks: days since the pathway start, the day-38 inter-provider transfer target and the
day-62 treatment target, with breaches flagged.

The referral carries the pathway start date in the `cancer-pathway-start-date` extension on its
ServiceRequest (see fhir_profiles). The inter-provider transfer is the IPT received date where the episode has
one (the referral that completed the data set), else the referral reaching the centre (the episode's opening);
treatment is the first definitive treatment date the discharge summary reports, and until then the first
acceptance of a transfer of care to the centre (the patient admitted for surgery). The targets move by the
waiting-time adjustments, so a flag here agrees with the breach allocation's (cwt_allocation.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from service.store.cwt import CwtDates

TRANSFER_TARGET_DAYS = 38
TREATMENT_TARGET_DAYS = 62


@dataclass(frozen=True)
class PathwayClock:
    start: date
    days_elapsed: int
    transfer_target: date
    treatment_target: date
    transferred_on: date
    treated_on: date | None
    transfer_breached: bool
    treatment_breached: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "days_elapsed": self.days_elapsed,
            "day_38_transfer_target": self.transfer_target.isoformat(),
            "day_62_treatment_target": self.treatment_target.isoformat(),
            "transferred_on": self.transferred_on.isoformat(),
            "treated_on": self.treated_on.isoformat() if self.treated_on else None,
            "day_38_breached": self.transfer_breached,
            "day_62_breached": self.treatment_breached,
        }


def pathway_clock(
    start: date, *, referred_at: datetime, treated_at: datetime | None, today: date, cwt: CwtDates | None = None
) -> PathwayClock:
    cwt = cwt or CwtDates()
    referring, treating = cwt.adjustment_days_referring, cwt.adjustment_days_treating
    transfer_target = start + timedelta(days=TRANSFER_TARGET_DAYS + referring)
    treatment_target = start + timedelta(days=TREATMENT_TARGET_DAYS + referring + treating)
    treated_on = cwt.treatment_date or (treated_at.date() if treated_at else None)
    transferred_on = cwt.ipt_received_date or referred_at.date()
    end = treated_on or today
    return PathwayClock(
        start=start,
        days_elapsed=(end - start).days,
        transfer_target=transfer_target,
        treatment_target=treatment_target,
        transferred_on=transferred_on,
        treated_on=treated_on,
        transfer_breached=transferred_on > transfer_target,
        treatment_breached=end > treatment_target,
    )
