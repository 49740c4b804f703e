"""The SMDT coordinator's meeting list, `GET /ui/meeting`: every referral at the centre awaiting SMDT discussion
(referred, or back with the more information the SMDT asked for), longest on the pathway first, with the
patient, the referral question, the diagnosis and primary site, the referring consultant, the key worker, the
days on the pathway and whether the referral reached the centre by day 38. Printable for the meeting (a print
stylesheet hides the page furniture). SMDT coordinators only: it names patients.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from service.episodes.referral_summary import referral_summaries
from service.http.context import services
from service.identity.staff_roles import SMDT_COORDINATOR
from service.store import db, episode_list
from service.store.episode_list import EpisodeFilter
from service.store.worklist_reads import AWAITING_SMDT_STATES
from service.ui import display_text
from service.ui.access import current_session, require_role
from service.ui.formatting import UK, age_on
from service.ui.rendering import render

MEETING_LIMIT = 500
DAY_38 = 38


async def show_meeting(request: web.Request) -> web.Response:
    session = await current_session(request)
    require_role(session, SMDT_COORDINATOR)
    hub = services(request)
    now = hub.clock()
    today = now.astimezone(UK).date()
    centre = hub.registry.current.centre().ods
    async with db.connection(hub.pool) as conn:
        items = await episode_list.list_page(
            conn,
            EpisodeFilter(states=AWAITING_SMDT_STATES, responsible=None),
            now=now,
            today=today,
            sort="pathway",
            limit=MEETING_LIMIT,
            offset=0,
        )
    items = [i for i in items if i.centre_ods == centre]
    summaries = await referral_summaries(hub.pool, hub.mailboxes.vault, [i.id for i in items])
    rows: list[dict[str, Any]] = []
    for item in items:
        summary = summaries.get(item.id)
        at_centre = item.opened_at.astimezone(UK).date()
        rows.append(
            {
                "item": item,
                "id": str(item.id),
                "patient": summary,
                "age": age_on(summary.birth_date, today) if summary else None,
                "state": display_text.state_words(item.state),
                "days_on_pathway": (today - item.pathway_start).days if item.pathway_start else None,
                "day38": (at_centre - item.pathway_start).days if item.pathway_start else None,
            }
        )
    return render(
        request,
        "meeting/meeting.html",
        {"page_title": "SMDT meeting list", "rows": rows, "today": today, "centre": centre, "day_38": DAY_38},
    )


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/ui/meeting", show_meeting)
