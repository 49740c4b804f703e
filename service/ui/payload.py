"""Reading a message's clinical content on the staff pages, `/ui/episodes/{episode_id}/messages/{message_id}`:
governance only; GET shows what the message is (kind, sender, recipient, time: no content) and a form asking
why; POST with a reason reads it through `service.governance.read_payload`, the same audited read as
`GET /governance/messages/{id}` (D5: the read and its audit event commit together), and shows it as a letter.
"""

from __future__ import annotations

import json
from datetime import timedelta
from uuid import UUID

from aiohttp import web

from service.errors import Code, HandoverError
from service.governance import LONGEST_WORD, MAX_REASON, MIN_REASON, MIN_WORDS, read_payload, reason_problem
from service.http.context import services
from service.identity.roles import GOVERNANCE, StaffRole
from service.identity.staff import StaffIdentity
from service.store import db, episode_reads
from service.store.episode_reads import TimelineEntry
from service.ui.access import current_session, require_role
from service.ui.forms import read_form
from service.ui.letter import read_letter
from service.ui.paths import uuid_in_path
from service.ui.rendering import render
from service.ui.sessions import StaffSession
from service.ui.state import SESSION_STORE

PATH = "/ui/episodes/{episode_id}/messages/{message_id}"


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get(PATH, ask_reason)
    router.add_post(PATH, show_letter)


async def _message(request: web.Request) -> tuple[UUID, TimelineEntry]:
    """The episode id and the message's place in that episode's timeline; 404 if it is not part of it."""
    episode_id = uuid_in_path(request, "episode_id", "No such message")
    message_id = uuid_in_path(request, "message_id", "No such message")
    async with db.connection(services(request).pool) as conn:
        timeline = await episode_reads.timeline(conn, episode_id)
    entry = next((t for t in timeline if t.message_id == message_id), None)
    if entry is None:
        raise HandoverError(Code.NOT_FOUND, "No such message")
    return episode_id, entry


def _reader(request: web.Request, session: StaffSession) -> StaffIdentity:
    """The signed-in governance user as the payload read's actor (as a staff token would name them)."""
    idle: timedelta = request.app[SESSION_STORE].idle
    return StaffIdentity(session.subject, StaffRole.GOVERNANCE, session.session_id, session.last_seen_at + idle)


def _form(
    request: web.Request, episode_id: UUID, entry: TimelineEntry, *, error: str = "", status: int = 200
) -> web.Response:
    return render(
        request,
        "payload/reason.html",
        {
            "page_title": "Why do you need to read this message?",
            "episode_id": episode_id,
            "entry": entry,
            "error": error,
            "min_reason": MIN_REASON,
            "max_reason": MAX_REASON,
        },
        status=status,
    )


async def ask_reason(request: web.Request) -> web.Response:
    session = await current_session(request)
    require_role(session, GOVERNANCE)
    episode_id, entry = await _message(request)
    return _form(request, episode_id, entry)


async def show_letter(request: web.Request) -> web.Response:
    session = await current_session(request)
    require_role(session, GOVERNANCE)
    form = await read_form(request, session)
    episode_id, entry = await _message(request)
    reason = form.get("reason", "").strip()
    if reason_problem(reason) is not None:
        error = (
            f"Say in words why you need to read this message: {MIN_REASON} to {MAX_REASON} characters on one line,"
            f" at least {MIN_WORDS} words, none longer than {LONGEST_WORD} characters"
        )
        return _form(request, episode_id, entry, error=error, status=400)
    hub = services(request)
    payload = await read_payload(
        hub.pool, entry.message_id, _reader(request, session), reason, hub.clock, vault=hub.mailboxes.vault
    )
    letter = read_letter(json.loads(payload))
    return render(
        request,
        "payload/letter.html",
        {"page_title": letter.title, "letter": letter, "episode_id": episode_id, "entry": entry, "reason": reason},
    )
