"""The episode page, `GET /ui/episodes/{episode_id}`: at the top, who is clinically responsible now, since
when and who accepted; then the timeline picture (with its text alternative), the responsibility ledger,
deadlines and pathway clocks, and every message with its audit entries proven against the latest signed
checkpoint. An episode the role may not see is the same 404 page as one that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from aiohttp import web

from service.auditlog.message_proofs import prove_messages
from service.episodes import snapshot
from service.episodes.clocks import pathway_clock
from service.episodes.cwt_reading import london_date
from service.episodes.cwt_report import names_from
from service.episodes.referral_summary import referral_summaries
from service.errors import Code, HandoverError
from service.http.audit import AUDIT_LOG
from service.http.context import services
from service.identity.staff_roles import GOVERNANCE
from service.registry import RegistryHolder
from service.store import cwt as cwt_store
from service.store import db, episode_reads
from service.store.pathway_breaches import STOPPED_STATES
from service.ui import display_text
from service.ui.access import current_session, may_see_episode, may_see_patient, require_role
from service.ui.acknowledgements import ACKNOWLEDGEMENT, pair_acknowledgements
from service.ui.cwt_picture import cwt_section
from service.ui.formatting import UK, age_on
from service.ui.rendering import render
from service.ui.timeline_picture import draw_timeline


def _name_of(registry: RegistryHolder) -> Callable[[str], str | None]:
    def name(ods: str) -> str | None:
        found = registry.participant(ods)
        return found.name if found is not None else None

    return name


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
    patient = (
        (await referral_summaries(hub.pool, hub.mailboxes.vault, [row.id])).get(row.id)
        if may_see_patient(session)
        else None
    )
    episode = snapshot.load(row.snapshot)
    treated = next((h.since for h in episode.ledger[1:] if h.clinician.ods == row.centre_ods), None)
    clock = (
        pathway_clock(
            row.pathway_start,
            treated_at=treated,
            today=london_date(now),
            cwt=cwt_dates,
            stopped=row.state in STOPPED_STATES,
        )
        if row.pathway_start is not None
        else None
    )
    acknowledged_by = {answered: ack for ack, answered in pair_acknowledgements(timeline).items()}
    owed = {d.message_id: d for d in deadlines if d.kind == ACKNOWLEDGEMENT}
    messages: list[dict[str, Any]] = [
        {
            "id": str(t.message_id),
            "kind": display_text.event_words(t.kind),
            "sender": t.sender_ods,
            "recipient": t.recipient_ods,
            "at": t.at,
            "acknowledged_at": t.acknowledged_at,
            "acknowledgement_due": owed[t.message_id].due_at if t.message_id in owed else None,
            "entries": proofs.entries.get(t.message_id, []),
            "acknowledgement_entries": proofs.entries.get(acknowledged_by[t.message_id], [])
            if t.message_id in acknowledged_by
            else [],
        }
        for t in timeline
        if t.message_id not in acknowledged_by.values()
    ]
    return render(
        request,
        "episode/episode.html",
        {
            "page_title": f"Episode {str(row.id)[:8]}",
            "episode": row,
            "state": display_text.state_words(row.state),
            "patient": patient,
            "show_patient": may_see_patient(session),
            "age": age_on(patient.birth_date, now.astimezone(UK).date()) if patient else None,
            "holder": episode.responsible,
            "pending": episode.pending,
            "picture": draw_timeline(timeline, ledger, row.referrer_ods, row.centre_ods, _name_of(hub.registry)),
            "ledger": ledger,
            "deadlines": [  # a met acknowledgement is told on its message's row, not as a deadline of its own
                {"d": d, "overdue": d.met_at is None and d.due_at <= now}
                for d in deadlines
                if not (d.kind == ACKNOWLEDGEMENT and d.met_at is not None)
            ],
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
