"""The episode page, `GET /ui/episodes/{episode_id}`: at the top, who is clinically responsible now, since
when and who accepted; then the timeline picture (with its text alternative), the responsibility ledger,
deadlines and pathway clocks, and every message with its audit entries proven against the latest signed
checkpoint. An episode the role may not see is the same 404 page as one that does not exist.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aiohttp import web

from service.auditlog.message_proofs import prove_messages
from service.episodes import snapshot
from service.episodes.clocks import pathway_clock
from service.episodes.cwt_report import names_from
from service.errors import Code, HandoverError
from service.http.audit import AUDIT_LOG
from service.http.context import services
from service.identity.staff_roles import GOVERNANCE
from service.store import cwt as cwt_store
from service.store import db, episode_reads
from service.ui.access import current_session, may_see_episode, require_role
from service.ui.cwt_picture import cwt_section
from service.ui.rendering import render
from service.ui.timeline_picture import draw_timeline, kind_words


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/ui/episodes/{episode_id}", show_episode)


async def show_episode(request: web.Request) -> web.Response:
    session = await current_session(request)
    require_role(session, GOVERNANCE, "smdt-coordinator", "trust")
    try:
        episode_id = UUID(request.match_info["episode_id"])
    except ValueError:
        raise HandoverError(Code.NOT_FOUND, "No such episode") from None
    hub = services(request)
    async with db.connection(hub.pool) as conn:
        row = await episode_reads.get_episode(conn, episode_id)
        if row is None:
            raise HandoverError(Code.NOT_FOUND, "No such episode")
        timeline = await episode_reads.timeline(conn, row.id)
        if not may_see_episode(session, row, [o for t in timeline for o in (t.sender_ods, t.recipient_ods)]):
            raise HandoverError(Code.FORBIDDEN, "Not your trust's episode")
        ledger = await episode_reads.ledger(conn, row.id)
        deadlines = (await episode_reads.deadlines(conn, [row.id])).get(row.id, [])
        key_worker = await episode_reads.key_worker(conn, row.id)
        cwt_dates = await cwt_store.read_cwt_dates(conn, row.id)
    proofs = await prove_messages(
        hub.pool, request.app[AUDIT_LOG], hub.registry.current, [t.message_id for t in timeline]
    )
    now = hub.clock()
    episode = snapshot.load(row.snapshot)
    treated = next((h.since for h in episode.ledger[1:] if h.clinician.ods == row.centre_ods), None)
    clock = (
        pathway_clock(row.pathway_start, referred_at=row.opened_at, treated_at=treated, today=now.date(), cwt=cwt_dates)
        if row.pathway_start is not None
        else None
    )
    messages: list[dict[str, Any]] = [
        {
            "id": str(t.message_id),
            "kind": kind_words(t.kind),
            "sender": t.sender_ods,
            "recipient": t.recipient_ods,
            "at": t.at,
            "acknowledged_at": t.acknowledged_at,
            "entries": proofs.entries.get(t.message_id, []),
        }
        for t in timeline
    ]
    return render(
        request,
        "episode/episode.html",
        {
            "page_title": f"Episode {str(row.id)[:8]}",
            "episode": row,
            "state": row.state.replace("-", " "),
            "holder": episode.responsible,
            "pending": episode.pending,
            "picture": draw_timeline(timeline, ledger, row.referrer_ods, row.centre_ods),
            "ledger": ledger,
            "deadlines": [{"d": d, "overdue": d.met_at is None and d.due_at <= now} for d in deadlines],
            "clock": clock,
            "cwt": None
            if clock is None
            else cwt_section(
                str(row.id), (row.referrer_ods, row.centre_ods), cwt_dates, clock.days_elapsed, names_from(hub.registry)
            ),
            "key_worker": key_worker,
            "messages": messages,
            "proofs": proofs,
            "may_read_payloads": session.role == GOVERNANCE,
        },
    )
