"""The worklist (home page, `GET /ui/`) and NHS-number search (`POST /ui/search`).

Governance staff see every trust's items and may filter by trust, state and overdue; the centre's SMDT
coordinator sees the centre's queue; a trust user only its own patients; ops staff have no patients and are
sent to their own pages. Search is a POST so the NHS number never appears in a URL; results link by episode id.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from service.episodes.machine import State
from service.episodes.referral_summary import ReferralSummary, referral_summaries
from service.http.context import services
from service.identity.staff_roles import GOVERNANCE, OPS, SMDT_COORDINATOR
from service.store import db, worklist_reads
from service.terminology import is_nhs_number
from service.ui import display_text
from service.ui.access import current_session, may_see_patient, require_role
from service.ui.formatting import UK, age_on, format_nhs_number, organisation_formatter
from service.ui.forms import read_form
from service.ui.ops_home import show_ops_home
from service.ui.rendering import render
from service.ui.sessions import StaffSession

PAGE_SIZE = 25
CLOCK_HORIZON_DAYS = 7
ITEM_LABELS = {
    "overdue": ("Overdue", "red"),
    "smdt-outcome": ("Awaiting SMDT outcome", "blue"),
    "transfer-response": ("Transfer awaiting acceptance", "purple"),
    "day-62": ("Day 62 clock", "orange"),
    "day-38": ("Day 38 breached", "orange"),
}


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/ui/", show_worklist)
    router.add_post("/ui/search", search)


def _queue_of(session: StaffSession, centre: str) -> str | None:
    """Whose episodes the role sees: a trust user its own, the SMDT coordinator the centre's, governance all."""
    if session.role == SMDT_COORDINATOR:
        return centre
    return session.trust_ods


def _page_number(raw: str) -> int:
    return int(raw) if raw.isdigit() and 0 < int(raw) < 100_000 else 1


async def show_worklist(request: web.Request) -> web.Response:
    session = await current_session(request)
    if session.role == OPS:
        return await show_ops_home(request)  # no patients, no worklist: the queues' health
    require_role(session, GOVERNANCE, SMDT_COORDINATOR, "trust")
    hub = services(request)
    query = request.rel_url.query
    centre = hub.registry.current.centre().ods
    referrers = [p.ods for p in hub.registry.current.referrers()]
    trust = query.get("trust", "") if session.role == GOVERNANCE else ""
    state = query.get("state", "")
    where = worklist_reads.WorklistFilter(
        party=_queue_of(session, centre),
        referrer=trust if trust in referrers else None,
        state=state if state in {s.value for s in State} else None,
        overdue_only=query.get("overdue") == "yes",
        owed_by=centre if session.role == SMDT_COORDINATOR else None,
    )
    page = _page_number(query.get("page", "1"))
    now = hub.clock()
    async with db.connection(hub.pool) as conn:
        items, total = await worklist_reads.worklist_page(
            conn,
            where,
            now=now,
            today=now.astimezone(UK).date(),
            horizon_days=CLOCK_HORIZON_DAYS,
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
        )
    pages = max(1, -(-total // PAGE_SIZE))
    patients = (
        await referral_summaries(hub.pool, hub.mailboxes.vault, [i.episode_id for i in items])
        if may_see_patient(session)
        else {}
    )
    org = organisation_formatter(hub.registry.current.participants.get)
    filters = {
        "trust": where.referrer or "",
        "state": where.state or "",
        "overdue": "yes" if where.overdue_only else "",
    }
    return render(
        request,
        "worklist/worklist.html",
        {
            "page_title": "Worklist",
            "heading": _heading(session, centre, org),
            "rows": [_row(item, now, org, patients.get(item.episode_id)) for item in items],
            "show_patients": may_see_patient(session),
            "total": total,
            "page": page,
            "pages": pages,
            "filters": filters,
            "page_link": lambda number: _page_link(filters, number),
            "trusts": referrers if session.role == GOVERNANCE else [],
            "states": [(s.value, display_text.state_words(s.value)) for s in State],
        },
    )


def _heading(session: StaffSession, centre: str, org: Callable[[str | None], str]) -> str:
    if session.role == SMDT_COORDINATOR:
        return f"SMDT queue at {org(centre)}"
    if session.trust_ods is not None:
        return f"Patients of {org(session.trust_ods)}"
    return "Every trust"


def _page_link(filters: dict[str, str], number: int) -> str:
    return "/ui/?" + urlencode({**{k: v for k, v in filters.items() if v}, "page": str(number)})


def _row(
    item: worklist_reads.WorklistItem, now: datetime, org: Callable[[str | None], str], patient: ReferralSummary | None
) -> dict[str, Any]:
    label, colour = ITEM_LABELS[item.item]
    if item.item == "day-62" and item.due <= now:
        label, colour = "Day 62 target passed", "red"
    clinician = item.holder.get("clinician") or {}
    if item.deadline is not None:
        what = f"{display_text.deadline_words(item.deadline)} owed by {org(item.owed_by)} to {org(item.waiting)}"
    elif item.item == "day-62":
        what = "Treatment target (day 62) of the cancer pathway"
    else:
        what = "Transfer target (day 38) missed: the complete referral reached the centre after it, or not yet"
    return {
        "label": label,
        "colour": colour,
        "episode_id": str(item.episode_id),
        "short_id": str(item.episode_id)[:8],
        "referrer": item.referrer_ods,
        "state": display_text.state_words(item.state),
        "patient": patient,
        "age": age_on(patient.birth_date, now.astimezone(UK).date()) if patient else None,
        "responsible": clinician.get("name", ""),
        "responsible_ods": clinician.get("ods", ""),
        "what": what,
        "due": item.due,
        "overdue": item.due <= now,
        "since": item.since,
        "days_waiting": max(0, (now - item.since).days),
        "alerted_at": item.alerted_at,
    }


async def search(request: web.Request) -> web.Response:
    session = await current_session(request)
    require_role(session, GOVERNANCE, SMDT_COORDINATOR, "trust")
    form = await read_form(request, session)
    nhs_number = "".join(form.get("nhs_number", "").split())
    hub = services(request)
    if not is_nhs_number(nhs_number):
        return render(
            request,
            "worklist/search.html",
            {"page_title": "Find a patient", "error": "Enter a 10-digit NHS number with a valid check digit"},
            status=400,
        )
    party = _queue_of(session, hub.registry.current.centre().ods) if session.role != SMDT_COORDINATOR else None
    async with db.connection(hub.pool) as conn:
        found = await worklist_reads.find_by_nhs_number(conn, hub.pseudonyms.nhs_number(nhs_number), party)
    patients = await referral_summaries(hub.pool, hub.mailboxes.vault, found) if may_see_patient(session) else {}
    return render(
        request,
        "worklist/search.html",
        {
            "page_title": "Find a patient",
            "asked": format_nhs_number(nhs_number),
            "episodes": [{"id": str(e), "patient": patients.get(e)} for e in found],
        },
    )
