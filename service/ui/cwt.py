"""The cancer waiting times page, `GET /ui/governance/cwt?from=&to=`, and its CSV downloads (providers,
`/ui/governance/cwt.csv`; breaches, `/ui/governance/cwt-breaches.csv`). Governance staff only.

Per provider: 62-day performance on its allocated share of the pathways treated in the period, against the
national 85% standard (a chart with the numbers in a table beside it), transfers by day 38 and the median days of
each phase; then every breach, how it was allocated and why, linked to its episode.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from aiohttp import web

from service.episodes.cwt_report import (
    CwtReport,
    breaches_csv,
    cwt_report,
    explain,
    names_from,
    period_from_query,
    report_csv,
)
from service.errors import HandoverError
from service.http.context import services
from service.identity.staff_roles import GOVERNANCE
from service.ui.access import current_session, require_role
from service.ui.charts import BarChart, Series, bar_chart
from service.ui.formatting import UK, format_date
from service.ui.rendering import organisation_words, render

STANDARD_PERCENT = 85  # NHS England's operational standard for the 62-day pathway


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/ui/governance/cwt", show_report)
    router.add_get("/ui/governance/cwt.csv", download_providers)
    router.add_get("/ui/governance/cwt-breaches.csv", download_breaches)


async def _report(request: web.Request, *, lenient: bool = False) -> tuple[CwtReport, str | None]:
    """The report for the period asked; with `lenient`, a bad period gives the default period and the problem in
    words (for the page's error summary) instead of a refusal."""
    session = await current_session(request)
    require_role(session, GOVERNANCE)
    hub = services(request)
    now = hub.clock()
    today = now.astimezone(UK).date()
    query = request.rel_url.query
    problem = None
    try:
        start, end = period_from_query(query.get("from"), query.get("to"), today)
    except HandoverError as refused:
        if not lenient:
            raise
        problem = refused.text
        start, end = period_from_query(None, None, today)
    return await cwt_report(hub.pool, start, end, now), problem


def performance_chart(report: CwtReport, org: Callable[[str | None], str]) -> BarChart:
    """62-day performance per provider against the standard, each provider by name with its code (`org`)."""
    return bar_chart(
        f"62-day performance by provider, {format_date(report.start)} to {format_date(report.end)}",
        [org(p.ods) for p in report.providers],
        [
            Series(
                "Allocated pathways treated within 62 days (%)",
                "handover-bar--accepted",
                [None if p.performance is None else round(p.performance * 100, 1) for p in report.providers],
            )
        ],
        target=STANDARD_PERCENT,
        target_label=f"Standard {STANDARD_PERCENT}%",
    )


async def show_report(request: web.Request) -> web.Response:
    report, problem = await _report(request, lenient=True)
    name_of = names_from(services(request).registry)
    return render(
        request,
        "governance/cwt.html",
        {
            "page_title": "Cancer waiting times",
            "report": report,
            "chart": performance_chart(report, organisation_words(request)),
            "breaches": [(item, explain(item, name_of)) for item in report.breaches],
            "period_query": _period_query(report.start, report.end),
            "standard": STANDARD_PERCENT,
            "problem": problem,
        },
        status=400 if problem else 200,
    )


async def download_providers(request: web.Request) -> web.Response:
    report, _ = await _report(request)
    text = report_csv(report, names_from(services(request).registry))
    return _csv(text, f"handover-cwt-{report.start}-to-{report.end}.csv")


async def download_breaches(request: web.Request) -> web.Response:
    report, _ = await _report(request)
    text = breaches_csv(report, names_from(services(request).registry))
    return _csv(text, f"handover-cwt-breaches-{report.start}-to-{report.end}.csv")


def _csv(text: str, filename: str) -> web.Response:
    return web.Response(
        text=text,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _period_query(start: date, end: date) -> str:
    return f"from={start.isoformat()}&to={end.isoformat()}"
