"""Staff sign-in and sign-out: `GET /ui/sign-in` starts the OIDC authorization code flow (PKCE, state, nonce),
`GET /ui/auth/callback` finishes it, opens a session and moves on to the page first asked for (`?next=`, a page
under /ui/ only, carried in a short-lived cookie), `POST /ui/sign-out` ends it.

The `state` is kept server side (by its hash, for ten minutes, used once) and bound to the browser that
started the flow by a short-lived Lax cookie. Starts are limited per client address (`sign_in_limit`). The
`redirect_uri` is built from the configured public URL (HANDOVER_PUBLIC_URL), never from the Host header.
Signing in ends the session the browser already had. A refused sign-in is answered with a page that says why
and offers to try again (never a redirect back to sign-in, which with a provider that approves at once would
go round until the browser gives up). Each sign-in, refusal and sign-out is an audited `staff-login` event, as
staff bearer-token sign-ins are (service.auditlog.recording); the subject is audited whole (up to 255
characters, the OIDC limit).
"""

from __future__ import annotations

import hmac
import logging
import re

from aiohttp import web

from service.auditlog.events import AuditEvent, EventType
from service.errors import Code, HandoverError
from service.http.context import services
from service.identity.oidc_client import SignedInStaff, SignInRefused
from service.identity.staff_roles import OPS, AmbiguousRole, role_from_claim
from service.store import audit, db
from service.ui.access import current_session, return_path
from service.ui.forms import read_form
from service.ui.rendering import render
from service.ui.sessions import (
    PUBLIC_URL,
    SIGN_IN_COOKIE,
    SIGN_IN_SECONDS,
    SignInsBusy,
    clear_session_cookie,
    over_tls,
    session_token,
    set_session_cookie,
)
from service.ui.state import RELYING_PARTY, SESSION_STORE, SIGN_IN_LIMIT

log = logging.getLogger("handover.ui.signin")
CALLBACK_PATH = "/ui/auth/callback"
RETURN_COOKIE = "handover_return_to"  # the page asked for before signing in; checked again when used
_OAUTH_ERROR = re.compile(r"[a-z_]{1,40}")  # an OAuth error code, e.g. access_denied (anything else is not shown)
TOO_MANY = "Too many sign-ins were started from your address in the last minute. Wait a minute, then try again."
BUSY = "The hub has too many sign-ins in progress. Wait a few minutes, then try again."
NOT_STARTED_HERE = "This sign-in did not start in this browser, or it has expired or was already used."
NO_ROLE = "Your account has no Handover role. Ask whoever manages your account to give you one."
TWO_ROLES = (
    "Your account has more than one Handover role, so the hub cannot tell which pages to show you."
    " Ask whoever manages your account to leave you one."
)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/ui/sign-in", start_sign_in)
    router.add_get(CALLBACK_PATH, finish_sign_in)
    router.add_post("/ui/sign-out", sign_out)
    router.add_get("/ui/signed-out", signed_out)


def refused_page(request: web.Request, reason: str, status: int) -> web.Response:
    """The page a refused sign-in ends on: why, and a link (not a redirect) to try again."""
    return render(request, "signin/refused.html", {"page_title": "Sign-in refused", "reason": reason}, status=status)


async def start_sign_in(request: web.Request) -> web.Response:
    if RELYING_PARTY not in request.app:
        raise HandoverError(Code.UNAVAILABLE, "Staff sign-in is not configured (HANDOVER_OIDC_ISSUER)")
    if not request.app[SIGN_IN_LIMIT].allow(request.remote or ""):
        log.warning("sign-in starts limited", extra={"code": "rate-limited"})
        return refused_page(request, TOO_MANY, 429)
    redirect_uri = f"{request.app[PUBLIC_URL]}{CALLBACK_PATH}"
    try:
        started = await request.app[RELYING_PARTY].authorization(redirect_uri)
        await request.app[SESSION_STORE].remember_sign_in(
            started.state, started.nonce, started.code_verifier, redirect_uri
        )
    except SignInRefused as refused:
        return refused_page(request, refused.reason, refused.status)
    except SignInsBusy:
        log.warning("sign-ins in flight at their limit", extra={"code": "rate-limited"})
        return refused_page(request, BUSY, 503)
    response = web.HTTPSeeOther(started.url)
    secure = over_tls(request)
    # Lax, not Strict: the provider's redirect back is a cross-site navigation when the provider is elsewhere.
    response.set_cookie(
        SIGN_IN_COOKIE,
        started.state,
        path=CALLBACK_PATH,
        httponly=True,
        secure=secure,
        samesite="Lax",
        max_age=SIGN_IN_SECONDS,
    )
    back = return_path(request.rel_url.query.get("next"))
    if back != "/ui/":
        response.set_cookie(
            RETURN_COOKIE, back, path=CALLBACK_PATH, httponly=True, secure=secure, samesite="Lax", max_age=600
        )
    else:
        response.del_cookie(RETURN_COOKIE, path=CALLBACK_PATH)
    raise response


async def finish_sign_in(request: web.Request) -> web.Response:
    try:
        staff, role = await _signed_in_staff(request)
    except SignInRefused as refused:
        return refused_page(request, refused.reason, refused.status)
    party = request.app[RELYING_PARTY]
    token, session = await request.app[SESSION_STORE].open(
        subject=staff.subject,
        display_name=staff.display_name,
        role=role,
        issuer=party.issuer,
        replacing=session_token(request),  # signing in ends this browser's earlier session
    )
    await _audit(request, staff.subject, "signed-in", {"role": role, "issuer": party.issuer, "via": "oidc"})
    # A page of our own that moves on to the page first asked for (else /ui/): the SameSite=Strict cookie is sent
    # on that same-site navigation even when the provider (another site) started the redirect chain.
    back = return_path(request.cookies.get(RETURN_COOKIE))
    context = {"page_title": "Signed in", "continue_to": back, "continue_words": continue_words(back, role)}
    response = render(request, "signin/continue.html", context)
    set_session_cookie(request, response, token)
    response.del_cookie(SIGN_IN_COOKIE, path=CALLBACK_PATH)
    response.del_cookie(RETURN_COOKIE, path=CALLBACK_PATH)
    log.info("staff signed in", extra={"role": role, "session": session.session_id[:12]})
    return response


def continue_words(back: str, role: str) -> str:
    """The signed-in page's link: to the page first asked for, else to the role's home (/ui/ is the worklist for
    the care and governance roles, the operations home for ops, who have no worklist)."""
    if back != "/ui/":
        return "Continue to the page you asked for"
    return "Continue to the operations home" if role == OPS else "Continue to your worklist"


async def _signed_in_staff(request: web.Request) -> tuple[SignedInStaff, str]:
    """Who the provider signed in, and their one role; SignInRefused (with the reason to show) otherwise."""
    query = request.rel_url.query
    state, code = query.get("state", ""), query.get("code", "")
    bound = request.cookies.get(SIGN_IN_COOKIE, "")
    if not state or not bound or not hmac.compare_digest(state.encode(), bound.encode()):
        raise SignInRefused("not-started-here", NOT_STARTED_HERE, status=403)
    store = request.app[SESSION_STORE]
    attempt = await store.take_sign_in(state)  # used up whatever happens next
    if not code:  # the provider answered with an error (RFC 6749 section 4.1.2.1)
        error = query.get("error", "")
        named = f" (it said: {error})" if _OAUTH_ERROR.fullmatch(error) else ""
        raise SignInRefused("provider-error", f"The sign-in service did not sign you in{named}.", status=403)
    if attempt is None:
        raise SignInRefused("not-started-here", NOT_STARTED_HERE, status=403)
    party = request.app[RELYING_PARTY]
    staff = await party.complete(
        code=code, redirect_uri=attempt.redirect_uri, code_verifier=attempt.code_verifier, nonce=attempt.nonce
    )
    hub = services(request)
    try:
        role = role_from_claim(staff.claims.get(hub.settings.oidc_role_claim), hub.registry.is_participant)
    except AmbiguousRole:
        await _audit(request, staff.subject, "refused-ambiguous-role", {"issuer": party.issuer})
        raise SignInRefused("ambiguous-role", TWO_ROLES, status=403) from None
    if role is None:
        await _audit(request, staff.subject, "refused-no-role", {"issuer": party.issuer})
        raise SignInRefused("no-role", NO_ROLE, status=403)
    return staff, role


async def sign_out(request: web.Request) -> web.Response:
    session = await current_session(request)
    await read_form(request, session)
    ended = await request.app[SESSION_STORE].end(session_token(request))
    if ended is not None:
        await _audit(request, ended.subject, "signed-out", {"role": ended.role, "via": "oidc"})
    response = web.HTTPSeeOther("/ui/signed-out")
    clear_session_cookie(request, response)
    raise response


async def signed_out(request: web.Request) -> web.Response:
    return render(request, "signin/signed_out.html", {"page_title": "You have signed out"})


async def _audit(request: web.Request, subject: str, outcome: str, details: dict[str, str]) -> None:
    hub = services(request)
    async with db.transaction(hub.pool) as conn:
        event = AuditEvent(EventType.STAFF_LOGIN, outcome, subject, hub.clock(), details=details)
        await audit.append_event(conn, event)
