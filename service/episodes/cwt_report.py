"""The 62-day cancer waiting times report per provider, with breach allocation (CONTRACT section 9): for
`GET /governance/cwt`, its staff page and the CSV.

The cohort is every cancer pathway whose first definitive treatment falls in the period (the month of treatment
is when CWT counts a pathway). Per provider (referring or treating): pathways treated; allocated pathways and
allocated breaches, each the sum of the provider's shares (service/episodes/cwt_allocation.py); performance =
(allocated pathways - allocated breaches) / allocated pathways; transfers it made and how many by day 38; the
median days to transfer (d38) of its referrals and the median days from transfer to treatment (d24) of the
pathways it treated. A pathway with one provider counts once, fully to it.
"""

from __future__ import annotations

import csv
import io
import re
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from service.episodes.cwt_allocation import Allocation, Pathway, allocate
from service.episodes.cwt_words import describe_allocation
from service.errors import Code, HandoverError
from service.identity.registry import RegistryReader
from service.store import db
from service.store.cwt_reads import CwtPathwayRow, treated_pathways

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
NameOf = Callable[[str], str]  # an ODS code -> the organisation's name (the code itself when unknown)


@dataclass(frozen=True)
class ProviderFigures:
    ods: str
    pathways_treated: int
    allocated_pathways: float
    allocated_breaches: float
    transfers: int
    transfers_by_day_38: int
    median_d38: float | None
    median_d24: float | None

    @property
    def performance(self) -> float | None:
        """Share of its allocated pathways treated within 62 days (None when nothing is allocated to it)."""
        if self.allocated_pathways == 0:
            return None
        return (self.allocated_pathways - self.allocated_breaches) / self.allocated_pathways


@dataclass(frozen=True)
class AllocatedPathway:
    row: CwtPathwayRow
    allocation: Allocation

    @property
    def episode_id(self) -> UUID:
        return self.row.episode_id


@dataclass(frozen=True)
class CwtReport:
    start: date
    end: date
    generated_at: datetime
    providers: list[ProviderFigures]
    breaches: list[AllocatedPathway]
    pathways: int


def pathway_of(row: CwtPathwayRow) -> Pathway:
    return Pathway(
        id=str(row.episode_id),
        clock_start=row.clock_start,
        ipt_received_date=row.ipt_received_date,
        treatment_date=row.treatment_date,
        referring=row.referring,
        treating=row.treating,
        adjustment_days_referring=row.adjustment_days_referring,
        adjustment_days_treating=row.adjustment_days_treating,
    )


def build_report(rows: list[CwtPathwayRow], start: date, end: date, generated_at: datetime) -> CwtReport:
    """The report from the pathways treated in [start, end]; providers by ODS code, breaches by treatment date."""
    allocated = [AllocatedPathway(row, allocate(pathway_of(row))) for row in rows]
    treated: dict[str, int] = defaultdict(int)
    shares: dict[str, float] = defaultdict(float)
    breach_shares: dict[str, float] = defaultdict(float)
    transfers: dict[str, list[bool]] = defaultdict(list)
    d38s: dict[str, list[int]] = defaultdict(list)
    d24s: dict[str, list[int]] = defaultdict(list)
    for item in allocated:
        row, result = item.row, item.allocation
        for ods in {row.referring, row.treating}:
            treated[ods] += 1
        for ods, share in result.shares.items():
            shares[ods] += share
            if result.met_62_days is False:
                breach_shares[ods] += share
        if row.referring != row.treating and result.d38 is not None:
            transfers[row.referring].append(bool(result.transferred_by_day_38))
            d38s[row.referring].append(result.d38)
        if row.referring != row.treating and result.d24 is not None:
            d24s[row.treating].append(result.d24)
    providers = [
        ProviderFigures(
            ods=ods,
            pathways_treated=treated[ods],
            allocated_pathways=shares[ods],
            allocated_breaches=breach_shares[ods],
            transfers=len(transfers[ods]),
            transfers_by_day_38=sum(transfers[ods]),
            median_d38=_median(d38s[ods]),
            median_d24=_median(d24s[ods]),
        )
        for ods in sorted(treated)
    ]
    breaches = [item for item in allocated if item.allocation.met_62_days is False]
    return CwtReport(start, end, generated_at, providers, breaches, len(allocated))


async def cwt_report(pool: asyncpg.Pool, start: date, end: date, now: datetime) -> CwtReport:
    async with db.connection(pool) as conn:
        rows = await treated_pathways(conn, start, end)
    return build_report(rows, start, end, now)


def period_from_query(asked_from: str | None, asked_to: str | None, today: date) -> tuple[date, date]:
    """The report period from `from` and `to` (YYYY-MM-DD, both inclusive); by default the twelve calendar months
    up to `today` (this month so far and the eleven before it).
    HandoverError `bad-header` (400) for a date that is not YYYY-MM-DD or a period that ends before it starts."""
    end = _query_date("to", asked_to) or today
    months_back = end.year * 12 + end.month - 1 - 11
    start = _query_date("from", asked_from) or date(months_back // 12, months_back % 12 + 1, 1)
    if start > end:
        raise HandoverError(Code.BAD_HEADER, "'from' must not be after 'to'")
    return start, end


def _query_date(name: str, value: str | None) -> date | None:
    if value is None or value == "":
        return None
    if not _ISO_DATE.fullmatch(value):
        raise HandoverError(Code.BAD_HEADER, f"'{name}' must be a date YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise HandoverError(Code.BAD_HEADER, f"'{name}' must be a date YYYY-MM-DD") from None


def _median(values: list[int]) -> float | None:
    return float(statistics.median(values)) if values else None


def explain(item: AllocatedPathway, name_of: NameOf) -> str:
    """The breach's allocation in words (service/episodes/cwt_words.py)."""
    return describe_allocation(pathway_of(item.row), item.allocation, name_of)


def names_from(registry: RegistryReader) -> NameOf:
    """The organisation name of an ODS code from the network registry (the code itself when not listed)."""

    def name_of(ods: str) -> str:
        found = registry.participant(ods)
        return found.name if found is not None else ods

    return name_of


def _rounded(value: float | None, places: int = 2) -> float | None:
    return None if value is None else round(value, places)


def report_json(report: CwtReport, name_of: NameOf) -> dict[str, Any]:
    """The `/governance/cwt` body (CONTRACT section 9)."""
    return {
        "from": report.start.isoformat(),
        "to": report.end.isoformat(),
        "generated_at": report.generated_at.isoformat(),
        "pathways_treated": report.pathways,
        "providers": [
            {
                "provider": p.ods,
                "provider_name": name_of(p.ods),
                "pathways_treated": p.pathways_treated,
                "allocated_pathways": p.allocated_pathways,
                "allocated_breaches": p.allocated_breaches,
                "performance": _rounded(p.performance, 4),
                "transfers": p.transfers,
                "transfers_by_day_38": p.transfers_by_day_38,
                "median_d38": _rounded(p.median_d38),
                "median_d24": _rounded(p.median_d24),
            }
            for p in report.providers
        ],
        "breaches": [
            {
                "episode_id": str(item.episode_id),
                "episode": f"/episodes/{item.episode_id}",
                "page": f"/ui/episodes/{item.episode_id}",
                "referring": item.row.referring,
                "referring_name": name_of(item.row.referring),
                "treating": item.row.treating,
                "treating_name": name_of(item.row.treating),
                "clock_start": item.row.clock_start.isoformat(),
                "ipt_received_date": _iso(item.row.ipt_received_date),
                "treatment_date": _iso(item.row.treatment_date),
                "adjustment_days_referring": item.row.adjustment_days_referring,
                "adjustment_days_treating": item.row.adjustment_days_treating,
                **item.allocation.as_json(),
                "explanation": explain(item, name_of),
            }
            for item in report.breaches
        ],
    }


def _iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


CSV_COLUMNS = (
    "provider_name",
    "provider_ods",
    "pathways_treated",
    "allocated_pathways",
    "allocated_breaches",
    "performance_percent",
    "transfers",
    "transfers_by_day_38",
    "median_d38",
    "median_d24",
)


def report_csv(report: CwtReport, name_of: NameOf) -> str:
    """One row per provider (RFC 4180, header first; blank where nothing was measured); a spreadsheet opens it."""
    return _csv(
        CSV_COLUMNS,
        (
            (
                name_of(p.ods),
                p.ods,
                p.pathways_treated,
                _number(p.allocated_pathways),
                _number(p.allocated_breaches),
                _number(None if p.performance is None else p.performance * 100),
                p.transfers,
                p.transfers_by_day_38,
                _number(p.median_d38),
                _number(p.median_d24),
            )
            for p in report.providers
        ),
    )


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}".removesuffix(".0")


BREACH_CSV_COLUMNS = (
    "episode_id",
    "referring_name",
    "referring_ods",
    "treating_name",
    "treating_ods",
    "clock_start",
    "ipt_received_date",
    "treatment_date",
    "d38",
    "d24",
    "d62",
    "allocation_rule",
    "referring_share",
    "treating_share",
    "explanation",
)


def breaches_csv(report: CwtReport, name_of: NameOf) -> str:
    """One row per breach with its allocation (dates as YYYY-MM-DD, which spreadsheets read as dates)."""
    return _csv(BREACH_CSV_COLUMNS, (_breach_row(item, name_of) for item in report.breaches))


def _breach_row(item: AllocatedPathway, name_of: NameOf) -> tuple[object, ...]:
    row, a = item.row, item.allocation
    return (
        item.episode_id,
        name_of(row.referring),
        row.referring,
        name_of(row.treating),
        row.treating,
        row.clock_start.isoformat(),
        _iso(row.ipt_received_date) or "",
        _iso(row.treatment_date) or "",
        "" if a.d38 is None else a.d38,
        "" if a.d24 is None else a.d24,
        "" if a.d62 is None else a.d62,
        a.rule,
        "" if row.referring == row.treating else _number(a.shares.get(row.referring, 0.0)),
        _number(a.shares.get(row.treating, 0.0)),
        explain(item, name_of),
    )


def _csv(columns: tuple[str, ...], rows: Iterable[Iterable[object]]) -> str:
    """RFC 4180 text (CRLF line ends), the header `columns` first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue()
