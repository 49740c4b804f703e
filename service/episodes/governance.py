"""Governance figures per referring trust and year: volumes against the IOG's 200 resections a year, timings
and overdue items, for the API (`/governance/summary`), the staff page and its CSV download. "Overdue" counts what
the worklist shows as overdue: answers past their deadline and breached cancer pathway clocks (day 38, day 62),
with the three parts beside it.

"Resections performed" counts episodes whose discharge summary was sent after the patient was at the
centre (the centre operated and discharged); the IOG figure is for the whole catchment, so it is compared
with the network total. The figures themselves are counted by the store (service/store/governance_reads.py),
set-based, so the summary costs one statement however many episodes there are.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from service.store import db
from service.store.governance_reads import TrustYearFigures, trust_year_figures

IOG_RESECTIONS_PER_YEAR = 200

CSV_COLUMNS = (
    "trust",
    "year",
    "referrals",
    "accepted",
    "resections",
    "median_days_referral_to_smdt_outcome",
    "median_hours_transfer_acceptance",
    "overdue",
    "overdue_answers",
    "day_38_breaches",
    "day_62_breaches",
)


@dataclass(frozen=True)
class NetworkYear:
    """The whole network's volumes for one year, against the IOG target."""

    year: int
    referrals: int
    accepted: int
    resections: int
    overdue: int
    iog_resections_target: int = IOG_RESECTIONS_PER_YEAR

    @property
    def meets_iog_target(self) -> bool:
        return self.resections >= self.iog_resections_target


@dataclass(frozen=True)
class GovernanceSummary:
    generated_at: datetime
    trusts: list[TrustYearFigures]
    network: list[NetworkYear]

    @property
    def overdue_total(self) -> int:
        return sum(row.overdue_items for row in self.trusts)

    @property
    def years(self) -> list[int]:
        return [row.year for row in self.network]

    def trusts_in(self, year: int) -> list[TrustYearFigures]:
        return [row for row in self.trusts if row.year == year]


def summarise(figures: list[TrustYearFigures], generated_at: datetime) -> GovernanceSummary:
    """The summary from per-trust figures: network totals per year added, newest year first in `network`."""
    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for row in figures:
        total = totals[row.year]
        total[0] += row.referrals
        total[1] += row.accepted
        total[2] += row.resections
        total[3] += row.overdue_items
    network = [NetworkYear(year, *numbers) for year, numbers in sorted(totals.items(), reverse=True)]
    return GovernanceSummary(generated_at, list(figures), network)


async def governance_summary(pool: asyncpg.Pool, now: datetime) -> GovernanceSummary:
    """The summary as the store stands now (overdue = open deadlines due by `now` and breached clocks)."""
    async with db.connection(pool) as conn:
        figures = await trust_year_figures(conn, now)
    return summarise(figures, now)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def summary_json(summary: GovernanceSummary) -> dict[str, Any]:
    """The `/governance/summary` body (CONTRACT section 6): trusts, network per year, overdue total."""
    return {
        "generated_at": summary.generated_at.isoformat(),
        "trusts": [
            {
                "trust": row.trust,
                "year": row.year,
                "referrals": row.referrals,
                "accepted": row.accepted,
                "resections": row.resections,
                "overdue": row.overdue_items,
                "overdue_answers": row.overdue,
                "day_38_breaches": row.day_38_breaches,
                "day_62_breaches": row.day_62_breaches,
                "median_days_referral_to_smdt_outcome": _rounded(row.median_days_referral_to_outcome),
                "median_hours_transfer_acceptance": _rounded(row.median_hours_transfer_acceptance),
            }
            for row in summary.trusts
        ],
        "network": [
            {
                "year": row.year,
                "referrals": row.referrals,
                "accepted": row.accepted,
                "resections": row.resections,
                "iog_resections_target": row.iog_resections_target,
                "meets_iog_target": row.meets_iog_target,
            }
            for row in sorted(summary.network, key=lambda n: n.year)
        ],
        "overdue_total": summary.overdue_total,
    }


def summary_csv(summary: GovernanceSummary) -> str:
    """The per-trust figures as CSV (RFC 4180, header row first), then one `network` row per year."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in summary.trusts:
        writer.writerow(
            (
                row.trust,
                row.year,
                row.referrals,
                row.accepted,
                row.resections,
                _csv_number(row.median_days_referral_to_outcome),
                _csv_number(row.median_hours_transfer_acceptance),
                row.overdue_items,
                row.overdue,
                row.day_38_breaches,
                row.day_62_breaches,
            )
        )
    for net in sorted(summary.network, key=lambda n: n.year):
        writer.writerow(
            ("network", net.year, net.referrals, net.accepted, net.resections, "", "", net.overdue, "", "", "")
        )
    return out.getvalue()


def _csv_number(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"
