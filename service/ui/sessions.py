"""Signed-in staff sessions for the pages under /ui/: kept in PostgreSQL (so every hub process and replica
knows them), found by the SHA-256 of the cookie value, ended by sign-out or after the idle timeout.

The cookie is HttpOnly, SameSite=Strict, Secure when the page was served over TLS, scoped to /ui, and has
no Max-Age (it dies with the browser; the server-side idle timeout ends it sooner).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from aiohttp import web

from service.clock import Clock, utc_now
from service.identity.staff_roles import trust_ods
from service.store import db, ui_sessions

SESSION_COOKIE = "handover_session"
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


class SessionStore:
    """Opens, resumes and ends sessions. Arguments: the pool, the idle timeout, and the clock (the real one:
    like every credential, sessions expire by wall-clock time)."""

    def __init__(self, pool: asyncpg.Pool, idle: timedelta, clock: Clock = utc_now) -> None:
        self._pool = pool
        self.idle = idle
        self._clock = clock

    async def open(self, *, subject: str, display_name: str, role: str, issuer: str) -> tuple[str, StaffSession]:
        """A new session; returns the cookie value (shown to nobody else) and the session."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        row = ui_sessions.SessionRow(subject, display_name, role, issuer, secrets.token_urlsafe(32), now, now)
        async with db.transaction(self._pool) as conn:
            await ui_sessions.insert_session(conn, token_digest(token), row)
        return token, _session(token_digest(token), row)

    async def resume(self, token: str) -> StaffSession | None:
        """The live session for this cookie value (and it counts as activity), or None."""
        if not 20 <= len(token) <= 100:
            return None
        now = self._clock()
        async with db.transaction(self._pool) as conn:
            row = await ui_sessions.touch_session(conn, token_digest(token), now=now, seen_after=now - self.idle)
        return None if row is None else _session(token_digest(token), row)

    async def end(self, token: str) -> StaffSession | None:
        async with db.transaction(self._pool) as conn:
            row = await ui_sessions.end_session(conn, token_digest(token), self._clock())
        return None if row is None else _session(token_digest(token), row)

    async def remember_sign_in(self, state: str, nonce: str, code_verifier: str, redirect_uri: str) -> None:
        async with db.transaction(self._pool) as conn:
            await ui_sessions.forget_stale_attempts(conn, self._clock() - timedelta(seconds=SIGN_IN_SECONDS))
            await ui_sessions.insert_attempt(
                conn, token_digest(state), ui_sessions.SignInAttempt(nonce, code_verifier, redirect_uri, self._clock())
            )

    async def take_sign_in(self, state: str) -> ui_sessions.SignInAttempt | None:
        async with db.transaction(self._pool) as conn:
            return await ui_sessions.take_attempt(
                conn, token_digest(state), self._clock() - timedelta(seconds=SIGN_IN_SECONDS)
            )


def set_session_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, path="/ui", httponly=True, secure=request.secure, samesite="Strict")


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/ui")
