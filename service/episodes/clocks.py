"""Cancer pathway clocks: days since the pathway start, the day-38 inter-provider transfer target and the
day-62 treatment target, with breaches flagged.

The referral carries the pathway start date in the `cancer-pathway-start-date` extension on its
ServiceRequest (see fhir_profiles). The inter-provider transfer is the referral reaching the centre (the
episode's opening); treatment is taken as the first acceptance of a transfer of care to the centre (the
patient admitted for surgery).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

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


def pathway_clock(start: date, *, referred_at: datetime, treated_at: datetime | None, today: date) -> PathwayClock:
    transfer_target = start + timedelta(days=TRANSFER_TARGET_DAYS)
    treatment_target = start + timedelta(days=TREATMENT_TARGET_DAYS)
    treated_on = treated_at.date() if treated_at else None
    end = treated_on or today
    return PathwayClock(
        start=start,
        days_elapsed=(end - start).days,
        transfer_target=transfer_target,
        treatment_target=treatment_target,
        transferred_on=referred_at.date(),
        treated_on=treated_on,
        transfer_breached=referred_at.date() > transfer_target,
        treatment_breached=end > treatment_target,
    )
