"""Every episode the signed-in role may see, `GET /ui/episodes`, and the same list as CSV, `GET /ui/episodes.csv`.

Filters (query parameters, CONTRACT.md section 9): `trust` (referring trust), `state`, `responsible` (the
organisation clinically responsible now), `from` / `to` (referral dates, YYYY-MM-DD, inclusive), `overdue=yes`,
`breach` (`day-38`, `day-62`, `any`), `milestone` (`accepted`, `resection`: the governance figures' episodes),
`sort` and `page`. A value that is not one of these is reported on the page (400) and not applied. Governance
and the centre's SMDT coordinator see every episode, a trust user its own; ops none. Care roles see the patient
by name (`access.may_see_patient`); the CSV never carries patient identifiers.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from service.episodes.machine import State
from service.episodes.referral_summary import ReferralSummary, referral_summaries
from service.http.context import services
from service.identity.staff_roles import GOVERNANCE, SMDT_COORDINATOR
from service.registry import Registry
from service.store import db, episode_list
from service.store.episode_list import BREACHES, MILESTONES, SORTS, EpisodeFilter, ListedEpisode
from service.ui import display_text
from service.ui.access import current_session, may_see_patient, require_role
from service.ui.formatting import UK, age_on, format_date, organisation_formatter
from service.ui.rendering import render
from service.ui.sessions import StaffSession

PAGE_SIZE = 25
CSV_LIMIT = 10_000
SORT_WORDS = {
    "newest": "Newest referral first",
    "oldest": "Oldest referral first",
    "updated": "Most recently changed first",
    "trust": "By referring trust",
    "state": "By state",
    "pathway": "Earliest pathway start first",
}
BREACH_WORDS = {"day-38": "day 38 missed", "day-62": "day 62 missed", "any": "a pathway target missed"}
MILESTONE_WORDS = {"accepted": "accepted by the SMDT", "resection": "resected at the centre"}


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/ui/episodes", show_list)
    router.add_get("/ui/episodes.csv", download_csv)


@dataclass
class Asked:
    """The filters as asked (valid ones only), what they mean in words, and the problems with the others."""

    where: EpisodeFilter
    query: dict[str, str]
    sort: str
    page: int
    words: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _date(raw: str, label: str, problems: list[str]) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        problems.append(f"The {label} date must look like 2026-12-07")
        return None


def read_filters(query: Any, session: StaffSession, registry: Registry) -> Asked:
    """The request's filters, checked against the registry and the contract's values."""
    org = organisation_formatter(registry.participants.get)
    problems: list[str] = []
    known = set(registry.participants)

    def pick(name: str, allowed: Any, label: str) -> str | None:
        raw = str(query.get(name, "")).strip()
        if raw and raw not in allowed:
            problems.append(f"There is no {label} like that")
            return None
        return raw or None

    trust = pick("trust", known, "referring trust")
    state = pick("state", {s.value for s in State}, "episode state")
    responsible = pick("responsible", known, "organisation")
    breach = pick("breach", BREACHES, "pathway target")
    milestone = pick("milestone", MILESTONES, "milestone")
    sort = pick("sort", SORTS, "order") or "newest"
    opened_from = _date(str(query.get("from", "")).strip(), "from", problems)
    opened_to = _date(str(query.get("to", "")).strip(), "to", problems)
    overdue = query.get("overdue") in ("yes", "true")
    raw_page = str(query.get("page", "1"))
    page = int(raw_page) if raw_page.isdigit() and 0 < int(raw_page) < 100_000 else 1
    where = EpisodeFilter(
        party=session.trust_ods if session.role not in (GOVERNANCE, SMDT_COORDINATOR) else None,
        trust=trust,
        states=(state,) if state else (),
        responsible=responsible,
        opened_from=opened_from,
        opened_to=opened_to,
        overdue=overdue,
        breach=breach,
        milestone=milestone,
    )
    kept = {
        "trust": trust or "",
        "state": state or "",
        "responsible": responsible or "",
        "from": opened_from.isoformat() if opened_from else "",
        "to": opened_to.isoformat() if opened_to else "",
        "overdue": "yes" if overdue else "",
        "breach": breach or "",
        "milestone": milestone or "",
        "sort": sort if sort != "newest" else "",
    }
    words = [
        *([f"referred by {org(trust)}"] if trust else []),
        *([f"in state “{display_text.state_words(state)}”"] if state else []),
        *([f"with {org(responsible)} responsible now"] if responsible else []),
        *([f"referred from {format_date(opened_from)}"] if opened_from else []),
        *([f"referred up to {format_date(opened_to)}"] if opened_to else []),
        *(["with an answer overdue"] if overdue else []),
        *([f"with {BREACH_WORDS[breach]}"] if breach else []),
        *([MILESTONE_WORDS[milestone]] if milestone else []),
    ]
    return Asked(where, {k: v for k, v in kept.items() if v}, sort, page, words, problems)


def link(query: dict[str, str], **changes: str) -> str:
    merged = {k: v for k, v in {**query, **changes}.items() if v}
    return "/ui/episodes" + ("?" + urlencode(merged) if merged else "")


def row_view(item: ListedEpisode, patient: ReferralSummary | None, today: date) -> dict[str, Any]:
    treated = item.treatment_date
    return {
        "item": item,
        "id": str(item.id),
        "state": display_text.state_words(item.state),
        "patient": patient,
        "age": age_on(patient.birth_date, today) if patient else None,
        "days_on_pathway": ((treated or today) - item.pathway_start).days if item.pathway_start else None,
    }


async def _listing(request: web.Request, session: StaffSession, asked: Asked, limit: int, offset: int) -> Any:
    hub = services(request)
    now = hub.clock()
    today = now.astimezone(UK).date()
    async with db.connection(hub.pool) as conn:
        items = await episode_list.list_page(
            conn, asked.where, now=now, today=today, sort=asked.sort, limit=limit, offset=offset
        )
        counts = await episode_list.count_by_state(conn, asked.where, now=now, today=today)
    patients = (
        await referral_summaries(hub.pool, hub.mailboxes.vault, [i.id for i in items])
        if may_see_patient(session)
        else {}
    )
    return items, counts, patients, today, now


async def show_list(request: web.Request) -> web.Response:
    session = await current_session(request)
    require_role(session, GOVERNANCE, SMDT_COORDINATOR, "trust")
    registry = services(request).registry.current
    asked = read_filters(request.rel_url.query, session, registry)
    items, counts, patients, today, now = await _listing(
        request, session, asked, PAGE_SIZE, (asked.page - 1) * PAGE_SIZE
    )
    total = sum(counts.values())
    pages = max(1, -(-total // PAGE_SIZE))
    visible_orgs = sorted(registry.participants.values(), key=lambda p: (not p.active, p.name))
    return render(
        request,
        "episodes/list.html",
        {
            "page_title": "Episodes",
            "rows": [row_view(i, patients.get(i.id), today) for i in items],
            "show_patients": may_see_patient(session),
            "total": total,
            "counts": sorted(((display_text.state_words(s), n, s) for s, n in counts.items()), key=lambda c: -c[1]),
            "asked": asked,
            "page": asked.page,
            "pages": pages,
            "link": lambda **changes: link(asked.query, **changes),
            "csv_link": "/ui/episodes.csv" + ("?" + urlencode(asked.query) if asked.query else ""),
            "referrers": [p.ods for p in registry.referrers()],
            "organisations": [p.ods for p in visible_orgs],
            "states": [(s.value, display_text.state_words(s.value)) for s in State],
            "sorts": SORT_WORDS,
            "breaches": BREACH_WORDS,
            "now": now,
        },
        status=400 if asked.problems else 200,
    )


CSV_COLUMNS = (
    "episode_id",
    "referring_trust",
    "referring_trust_ods",
    "state",
    "responsible_now",
    "responsible_ods",
    "referred_at",
    "last_change_at",
    "pathway_start",
    "treatment_date",
    "answers_overdue",
    "day_38_missed",
    "day_62_missed",
)


def list_csv(items: list[ListedEpisode], registry: Registry) -> str:
    """The listed episodes as CSV (UTF-8, one row each; words beside codes; no patient identifiers)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)

    def name(ods: str) -> str:
        found = registry.participants.get(ods)
        return found.name if found is not None else ""

    def when(value: datetime) -> str:
        return value.astimezone(UK).isoformat(timespec="minutes")

    for i in items:
        writer.writerow(
            [
                i.id,
                name(i.referrer_ods),
                i.referrer_ods,
                display_text.state_words(i.state),
                i.responsible_name,
                i.responsible_ods,
                when(i.opened_at),
                when(i.updated_at),
                i.pathway_start.isoformat() if i.pathway_start else "",
                i.treatment_date.isoformat() if i.treatment_date else "",
                i.overdue,
                "yes" if i.day38_breached else "no",
                "yes" if i.day62_breached else "no",
            ]
        )
    return out.getvalue()


async def download_csv(request: web.Request) -> web.Response:
    session = await current_session(request)
    require_role(session, GOVERNANCE, SMDT_COORDINATOR, "trust")
    hub = services(request)
    asked = read_filters(request.rel_url.query, session, hub.registry.current)
    if asked.problems:
        raise web.HTTPBadRequest(text="; ".join(asked.problems), content_type="text/plain")
    now = hub.clock()
    async with db.connection(hub.pool) as conn:
        items = await episode_list.list_page(
            conn, asked.where, now=now, today=now.astimezone(UK).date(), sort=asked.sort, limit=CSV_LIMIT, offset=0
        )
    return web.Response(
        text=list_csv(items, hub.registry.current),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="handover-episodes-{now:%Y-%m-%d}.csv"'},
    )
