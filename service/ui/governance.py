"""The governance summary page, `GET /ui/governance`, and its CSV download, `GET /ui/governance.csv`.

Per referring trust and year: referrals, SMDT acceptances, resections against the IOG's 200 a year (network
total), median days from referral to SMDT outcome, median hours to accept a transfer, overdue answers; as
server-drawn bar charts with the same numbers in tables beside them. Governance staff only.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from aiohttp import web

from service.episodes.governance import IOG_RESECTIONS_PER_YEAR, GovernanceSummary, governance_summary, summary_csv
from service.http.context import services
from service.identity.staff_roles import GOVERNANCE
from service.store.governance_reads import TrustYearFigures
from service.ui.access import current_session, require_role
from service.ui.charts import BarChart, Series, bar_chart
from service.ui.formatting import format_duration
from service.ui.rendering import organisation_words, render


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/ui/governance", show_summary)
    router.add_get("/ui/governance.csv", download_csv)


def chosen_year(summary: GovernanceSummary, asked: str | None) -> int | None:
    """The year asked for if the summary has it, else the latest year with referrals (None: no data yet)."""
    years = summary.years
    if asked is not None and asked.isdigit() and int(asked) in years:
        return int(asked)
    return max(years) if years else None


def summary_charts(
    summary: GovernanceSummary, year: int | None, org: Callable[[str | None], str]
) -> dict[str, BarChart]:
    """The page's charts: network resections per year against the IOG target; per trust in `year`, volumes
    and median timings, each trust by name with its code beside (`org`, the pages' filter)."""
    network = sorted(summary.network, key=lambda n: n.year)
    charts = {
        "resections": bar_chart(
            "Resections per year, whole network, against the IOG target",
            [str(n.year) for n in network],
            [Series("Resections", "handover-bar--resections", [n.resections for n in network])],
            target=IOG_RESECTIONS_PER_YEAR,
            target_label=f"IOG target {IOG_RESECTIONS_PER_YEAR} a year",
        )
    }
    if year is None:
        return charts
    rows = summary.trusts_in(year)
    trusts = [org(row.trust) for row in rows]
    charts["volumes"] = bar_chart(
        f"Referrals, acceptances and resections by referring trust, {year}",
        trusts,
        [
            Series("Referrals", "handover-bar--referrals", [r.referrals for r in rows]),
            Series("Accepted", "handover-bar--accepted", [r.accepted for r in rows]),
            Series("Resections", "handover-bar--resections", [r.resections for r in rows]),
        ],
    )
    days = [r.median_days_referral_to_outcome for r in rows]
    unit, per_day = duration_unit(max((d for d in days if d is not None), default=0.0))
    charts["timings"] = bar_chart(
        f"Median {unit} from referral to SMDT outcome by referring trust, {year}",
        trusts,
        [Series(f"Median {unit}", "handover-bar--days", [None if d is None else d * per_day for d in days])],
    )
    return charts


def overdue_parts(row: TrustYearFigures) -> str:
    """What a trust's overdue figure is made of, in words: "1 answer, 1 day 38 breach, 1 day 62 breach"."""
    parts = [
        (row.overdue, "answer", "answers"),
        (row.day_38_breaches, "day 38 breach", "day 38 breaches"),
        (row.day_62_breaches, "day 62 breach", "day 62 breaches"),
    ]
    return ", ".join(f"{n} {one if n == 1 else many}" for n, one, many in parts if n)


def days_words(days: float | None) -> str:
    """A median in days for the table: "9.3" days, or under a day in hours or minutes ("3 hours")."""
    if days is None:
        return "not yet"
    if days >= 1:
        return f"{days:.1f}"
    return format_duration(timedelta(days=days))


def duration_unit(largest_days: float) -> tuple[str, float]:
    """The unit a chart of durations up to `largest_days` reads best in, and how many of it make a day: days
    from one day up, else hours, minutes or seconds (a same-day median is "3 hours", not "0.1 days")."""
    for unit, per_day in (("days", 1.0), ("hours", 24.0), ("minutes", 1440.0)):
        if largest_days * per_day >= 1:
            return unit, per_day
    return "seconds", 86400.0


async def show_summary(request: web.Request) -> web.Response:
    session = await current_session(request)
    require_role(session, GOVERNANCE)
    hub = services(request)
    summary = await governance_summary(hub.pool, hub.clock())
    year = chosen_year(summary, request.rel_url.query.get("year"))
    return render(
        request,
        "governance/summary.html",
        {
            "page_title": "Governance summary",
            "summary": summary,
            "year": year,
            "rows": summary.trusts_in(year) if year is not None else [],
            "charts": summary_charts(summary, year, organisation_words(request)),
            "target": IOG_RESECTIONS_PER_YEAR,
            "overdue_parts": overdue_parts,
            "days_words": days_words,
        },
    )


async def download_csv(request: web.Request) -> web.Response:
    session = await current_session(request)
    require_role(session, GOVERNANCE)
    hub = services(request)
    now = hub.clock()
    summary = await governance_summary(hub.pool, now)
    return web.Response(
        text=summary_csv(summary),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="handover-governance-{now:%Y-%m-%d}.csv"'},
    )
