"""Signed-in staff sessions for the pages under /ui/: kept in PostgreSQL (so every hub process and replica
knows them), found by the SHA-256 of the cookie value, ended by sign-out, by the browser signing in again,
after the idle timeout (HANDOVER_UI_IDLE_MINUTES), or at the latest after the absolute lifetime
(HANDOVER_UI_MAX_SESSION_HOURS) whatever its activity.

The cookie is HttpOnly, SameSite=Strict and has no Max-Age (it dies with the browser; the server ends it
sooner). Over TLS (the request came over TLS, or through a trusted proxy that says so, or the configured public
URL is https) it is `__Host-handover_session`, Secure, with `Path=/`, so no other host or path can plant or
shadow it; over plain HTTP (development) it is `handover_session` scoped to /ui. Each name is read only in its
own setting.

A session may carry one notice for its next page (`leave_notice` / `take_notice`): what its own action did.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from aiohttp import web

from service.clock import Clock, utc_now
from service.identity.roles import trust_ods
from service.store import db, ui_sessions

SESSION_COOKIE = "handover_session"
SECURE_SESSION_COOKIE = "__Host-handover_session"
PUBLIC_URL = web.AppKey("ui_public_url", str)  # HANDOVER_PUBLIC_URL, or the listen address
NOTICE_KINDS = ("done", "problem")
SIGN_IN_COOKIE = "handover_sign_in"
SIGN_IN_SECONDS = 600


@dataclass(frozen=True)
class StaffSession:
    session_id: str  # the SHA-256 (hex) of the cookie value: safe to log, useless as a credential
    subject: str
    display_name: str
    role: str
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime

    @property
    def trust_ods(self) -> str | None:
        """The ODS code of a trust user (`trust:<ODS>`), else None."""
        return trust_ods(self.role)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _session(digest: str, row: ui_sessions.SessionRow) -> StaffSession:
    return StaffSession(
        digest, row.subject, row.display_name, row.role, row.csrf_token, row.created_at, row.last_seen_at
    )


class SignInsBusy(Exception):  # noqa: N818 - a condition, answered with a page
    """Too many sign-ins are in flight on the hub to start another."""


class SessionStore:
    """Opens, resumes and ends sessions. Arguments: the pool, the idle timeout, the absolute lifetime, the most
    sign-ins in flight at once, and the clock (the real one: like every credential, sessions expire by
    wall-clock time)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        idle: timedelta,
        lifetime: timedelta = timedelta(hours=12),
        *,
        max_pending_sign_ins: int = 10_000,
        clock: Clock = utc_now,
    ) -> None:
        self._pool = pool
        self.idle = idle
        self.lifetime = lifetime
        self.max_pending_sign_ins = max_pending_sign_ins
        self._clock = clock

    async def open(
        self, *, subject: str, display_name: str, role: str, issuer: str, replacing: str = ""
    ) -> tuple[str, StaffSession]:
        """A new session, ending the session whose cookie value is `replacing` (the browser's earlier one);
        returns the cookie value (shown to nobody else) and the session."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        row = ui_sessions.SessionRow(subject, display_name, role, issuer, secrets.token_urlsafe(32), now, now)
        async with db.transaction(self._pool) as conn:
            await ui_sessions.forget_idle_sessions(conn, now - self.idle, now - self.lifetime)  # never resumable
            if replacing:
                await ui_sessions.end_session(conn, token_digest(replacing), now)
            await ui_sessions.insert_session(conn, token_digest(token), row)
        return token, _session(token_digest(token), row)

    async def resume(self, token: str) -> StaffSession | None:
        """The live session for this cookie value (and it counts as activity), or None."""
        if not 20 <= len(token) <= 100:
            return None
        now = self._clock()
        async with db.transaction(self._pool) as conn:
            row = await ui_sessions.touch_session(
                conn, token_digest(token), now=now, seen_after=now - self.idle, created_after=now - self.lifetime
            )
        return None if row is None else _session(token_digest(token), row)

    async def leave_notice(self, session: StaffSession, kind: str, text: str) -> None:
        """What this session's action did, for its next page to say (once)."""
        if kind not in NOTICE_KINDS:
            raise ValueError(f"notice kind {kind!r}")
        async with db.transaction(self._pool) as conn:
            await ui_sessions.leave_notice(conn, session.session_id, kind, text[:500])

    async def take_notice(self, session: StaffSession) -> dict[str, str] | None:
        """The notice this session's own action left (`{"kind", "text"}`), cleared; None if none."""
        async with db.transaction(self._pool) as conn:
            found = await ui_sessions.take_notice(conn, session.session_id)
        return None if found is None else {"kind": found[0], "text": found[1]}

    async def end(self, token: str) -> StaffSession | None:
        async with db.transaction(self._pool) as conn:
            row = await ui_sessions.end_session(conn, token_digest(token), self._clock())
        return None if row is None else _session(token_digest(token), row)

    async def remember_sign_in(self, state: str, nonce: str, code_verifier: str, redirect_uri: str) -> None:
        """Keeps a sign-in in flight; SignInsBusy when `max_pending_sign_ins` are already (a bound on the rows
        unauthenticated clients can make, whatever addresses they come from)."""
        async with db.transaction(self._pool) as conn:
            await ui_sessions.forget_stale_attempts(conn, self._clock() - timedelta(seconds=SIGN_IN_SECONDS))
            if await ui_sessions.count_attempts(conn) >= self.max_pending_sign_ins:
                raise SignInsBusy
            await ui_sessions.insert_attempt(
                conn, token_digest(state), ui_sessions.SignInAttempt(nonce, code_verifier, redirect_uri, self._clock())
            )

    async def take_sign_in(self, state: str) -> ui_sessions.SignInAttempt | None:
        async with db.transaction(self._pool) as conn:
            return await ui_sessions.take_attempt(
                conn, token_digest(state), self._clock() - timedelta(seconds=SIGN_IN_SECONDS)
            )


def over_tls(request: web.Request) -> bool:
    """Whether the browser reached the pages over TLS: this request did (directly, or through a trusted proxy),
    or the configured public URL is https."""
    return request.secure or request.config_dict.get(PUBLIC_URL, "").startswith("https://")


def session_token(request: web.Request) -> str:
    """The session cookie's value under the name this setting uses ('' if none)."""
    return request.cookies.get(SECURE_SESSION_COOKIE if over_tls(request) else SESSION_COOKIE, "")


def set_session_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    if over_tls(request):
        response.set_cookie(SECURE_SESSION_COOKIE, token, path="/", httponly=True, secure=True, samesite="Strict")
    else:
        response.set_cookie(SESSION_COOKIE, token, path="/ui", httponly=True, samesite="Strict")


def clear_session_cookie(request: web.Request, response: web.StreamResponse) -> None:
    if over_tls(request):
        response.del_cookie(SECURE_SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
    else:
        response.del_cookie(SESSION_COOKIE, path="/ui")
