"""Governance figures per referring trust and year: volumes against the IOG's 200 resections a year, timings
and overdue items.

"Resections performed" counts episodes whose discharge summary was sent after the patient was at the
centre (the centre operated and discharged); the IOG figure is for the whole catchment, so it is compared
with the network total.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from statistics import median
from typing import Any

IOG_RESECTIONS_PER_YEAR = 200
_OUTCOMES = ("outcome-accepted", "outcome-declined", "outcome-more-information-needed")


def summarise(episodes: list[dict[str, Any]], overdue_by_episode: dict[Any, int]) -> dict[str, Any]:
    """Figures per (referrer, year of referral) and network totals per year."""
    rows: dict[tuple[str, int], dict[str, Any]] = defaultdict(
        lambda: {
            "referrals": 0,
            "accepted": 0,
            "resections": 0,
            "overdue": 0,
            "_outcome_days": [],
            "_acceptance_hours": [],
        }
    )
    for episode in episodes:
        year = episode["opened_at"].year
        row = rows[(episode["referrer"], year)]
        row["referrals"] += 1
        messages = [{**m, "at": datetime.fromisoformat(m["at"])} for m in episode["messages"]]
        kinds = [m["kind"] for m in messages if m["changed"]]
        if "outcome-accepted" in kinds:
            row["accepted"] += 1
        if "discharge-summary" in kinds:
            row["resections"] += 1
        first_outcome = next((m["at"] for m in messages if m["kind"] in _OUTCOMES), None)
        if first_outcome is not None:
            row["_outcome_days"].append((first_outcome - episode["opened_at"]).total_seconds() / 86400)
        requested: datetime | None = None
        for message in messages:
            if message["kind"] == "transfer-requested" and message["changed"]:
                requested = message["at"]
            elif message["kind"] == "transfer-accepted" and message["changed"] and requested is not None:
                row["_acceptance_hours"].append((message["at"] - requested).total_seconds() / 3600)
                requested = None
        row["overdue"] += overdue_by_episode.get(episode["id"], 0)

    trusts = []
    totals: dict[int, dict[str, int]] = defaultdict(lambda: {"referrals": 0, "accepted": 0, "resections": 0})
    for (trust, year), row in sorted(rows.items()):
        outcome_days, acceptance_hours = row.pop("_outcome_days"), row.pop("_acceptance_hours")
        trusts.append(
            {
                "trust": trust,
                "year": year,
                **row,
                "median_days_referral_to_smdt_outcome": round(median(outcome_days), 2) if outcome_days else None,
                "median_hours_transfer_acceptance": round(median(acceptance_hours), 2) if acceptance_hours else None,
            }
        )
        for key in ("referrals", "accepted", "resections"):
            totals[year][key] += row[key]
    network = [
        {
            "year": year,
            **figures,
            "iog_resections_target": IOG_RESECTIONS_PER_YEAR,
            "meets_iog_target": figures["resections"] >= IOG_RESECTIONS_PER_YEAR,
        }
        for year, figures in sorted(totals.items())
    ]
    return {"trusts": trusts, "network": network, "overdue_total": sum(overdue_by_episode.values())}
