"""An episode's `cancer_waiting_times` (CONTRACT section 9): its recorded CWT dates with the breach allocation
(service/episodes/cwt_allocation.py) and the 31-day standard, as the API shows them and the staff page draws them."""

from __future__ import annotations

from typing import Any

from service.episodes.cwt_allocation import Allocation, Pathway, allocate
from service.store.cwt import CwtDates

DECISION_TARGET_DAYS = 31


def cwt_pathway(episode_id: str, referring: str, treating: str, dates: CwtDates) -> Pathway | None:
    """The episode as the allocation module's Pathway; None for an episode that is not a cancer pathway."""
    if dates.clock_start is None:
        return None
    return Pathway(
        id=episode_id,
        clock_start=dates.clock_start,
        ipt_received_date=dates.ipt_received_date,
        treatment_date=dates.treatment_date,
        referring=referring,
        treating=treating,
        adjustment_days_referring=dates.adjustment_days_referring,
        adjustment_days_treating=dates.adjustment_days_treating,
    )


def cwt_allocation(episode_id: str, referring: str, treating: str, dates: CwtDates) -> Allocation | None:
    """The allocation of a cancer pathway episode; None for an episode that is not one (no clock start)."""
    pathway = cwt_pathway(episode_id, referring, treating, dates)
    return None if pathway is None else allocate(pathway)


def days_decision_to_treatment(dates: CwtDates) -> int | None:
    """The 31-day standard's days: decision to treat → first definitive treatment, less the centre's adjustment."""
    if dates.decision_to_treat_date is None or dates.treatment_date is None:
        return None
    return (dates.treatment_date - dates.decision_to_treat_date).days - dates.adjustment_days_treating


def cancer_waiting_times(episode_id: str, referring: str, treating: str, dates: CwtDates) -> dict[str, Any] | None:
    """The `cancer_waiting_times` object of GET /episodes/{id}; None (JSON null) when the episode is not a cancer
    pathway."""
    allocation = cwt_allocation(episode_id, referring, treating, dates)
    return None if allocation is None else cwt_view(dates, allocation)


def cwt_view(dates: CwtDates, allocation: Allocation) -> dict[str, Any]:
    """`cancer_waiting_times` of a cancer pathway episode (one with a clock start) whose allocation is known."""
    d31 = days_decision_to_treatment(dates)

    def shown(value: Any) -> str | None:
        return None if value is None else value.isoformat()

    return {
        "clock_start": shown(dates.clock_start),  # never None: an allocation has a clock start
        "ipt_received_date": shown(dates.ipt_received_date),
        "decision_to_treat_date": shown(dates.decision_to_treat_date),
        "treatment_date": shown(dates.treatment_date),
        "adjustment_days_referring": dates.adjustment_days_referring,
        "adjustment_days_treating": dates.adjustment_days_treating,
        **allocation.as_json(),  # d38, d24, d62, the three flags, the rule and the shares, as the CLI gives them
        "met_31_days": None if d31 is None else d31 <= DECISION_TARGET_DAYS,
    }
