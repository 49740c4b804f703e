"""Who may see what on the staff pages: the session a request carries, role checks, and episode visibility.

Without a live session a browser is sent to sign in (303) and any other client gets 401 (CONTRACT.md
section 8). A role that may not see a page or an episode gets the 403 page, which names nothing it protects.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from aiohttp import web
from yarl import URL

from service.episodes import snapshot
from service.errors import Code, HandoverError
from service.identity.staff_roles import GOVERNANCE, SMDT_COORDINATOR
from service.store.episodes import EpisodeRow
from service.ui.sessions import StaffSession, session_token
from service.ui.state import SESSION_STORE

SIGN_IN_PATH = "/ui/sign-in"
_SESSION = web.RequestKey("ui_session", StaffSession)
_RETURN_PATH = re.compile(r"/ui/[A-Za-z0-9._~=&%+:@/?-]{0,500}")


def return_path(candidate: str | None) -> str:
    """Where to go after signing in: `candidate` if it is one of our own pages (a path under /ui/, never another
    site, nor sign-in itself), else the worklist."""
    if (
        candidate
        and _RETURN_PATH.fullmatch(candidate)
        and "//" not in candidate
        and not candidate.startswith((SIGN_IN_PATH, "/ui/auth/"))
    ):
        return candidate
    return "/ui/"


def sign_in_location(request: web.Request) -> str:
    """The sign-in page, asked to come back to this page afterwards (when it is a page one can come back to)."""
    back = return_path(request.rel_url.raw_path_qs) if request.method == "GET" else "/ui/"
    return SIGN_IN_PATH if back == "/ui/" else str(URL(SIGN_IN_PATH).with_query(next=back))


def is_browser(request: web.Request) -> bool:
    """A browser asks for HTML when it navigates; API clients and scripts do not."""
    return "text/html" in request.headers.get("Accept", "")


def session_of(request: web.Request) -> StaffSession | None:
    """The session `current_session` found for this request, if it ran."""
    return request.get(_SESSION)


async def current_session(request: web.Request) -> StaffSession:
    """The live session; otherwise a 303 to sign-in (browsers) or 401 `unauthenticated` (other clients)."""
    found = session_of(request)
    if found is not None:
        return found
    token = session_token(request)
    session = await request.app[SESSION_STORE].resume(token) if token else None
    if session is None:
        if is_browser(request):
            raise web.HTTPSeeOther(sign_in_location(request))
        raise HandoverError(Code.UNAUTHENTICATED, "Sign in at /ui/sign-in to use the staff pages")
    request[_SESSION] = session
    return session


def has_role(session: StaffSession, *roles: str) -> bool:
    """Whether the session's role is one of `roles`; "trust" admits any `trust:<ODS>` role."""
    return session.role in roles or ("trust" in roles and session.trust_ods is not None)


def require_role(session: StaffSession, *roles: str) -> None:
    """Nothing if the role is admitted, else the 403 page."""
    if not has_role(session, *roles):
        raise HandoverError(Code.FORBIDDEN, "Your role does not give access to this page")


def may_see_episode(session: StaffSession, episode: EpisodeRow, parties: Iterable[str] = ()) -> bool:
    """Governance and the centre's SMDT coordinators see every episode; a trust user only an episode its trust
    refers, holds, or took part in (`parties`: the senders and recipients of its messages); ops none."""
    if session.role in (GOVERNANCE, SMDT_COORDINATOR):
        return True
    ods = session.trust_ods
    if ods is None:
        return False
    holder = snapshot.load(episode.snapshot).responsible.clinician.ods
    return ods in (episode.referrer_ods, episode.centre_ods, holder) or ods in set(parties)


def may_see_patient(session: StaffSession) -> bool:
    """Whether the role is shown patients by name (name, NHS number, date of birth) on the episodes it may see:
    the centre's SMDT coordinators and trust users (only ever on their own trust's episodes, which
    `may_see_episode` and the lists' `party` filter already limit). Governance reads identifiable content only
    through the reason gate (a stated, audited payload read); ops sees no patient at all."""
    return session.role == SMDT_COORDINATOR or (session.role != GOVERNANCE and session.trust_ods is not None)
