"""Staff page sessions and OIDC sign-ins in flight: every SQL statement for `ui_sessions` and
`ui_sign_in_attempts`. Both are keyed by the SHA-256 (hex) of the secret the browser holds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True)
class SessionRow:
    subject: str
    display_name: str
    role: str
    issuer: str
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True)
class SignInAttempt:
    nonce: str
    code_verifier: str
    redirect_uri: str
    created_at: datetime


def _session_row(record: asyncpg.Record) -> SessionRow:
    return SessionRow(
        record["subject"],
        record["display_name"],
        record["role"],
        record["issuer"],
        record["csrf_token"],
        record["created_at"],
        record["last_seen_at"],
    )


async def insert_session(conn: asyncpg.Connection, token_sha256: str, row: SessionRow) -> None:
    await conn.execute(
        "INSERT INTO ui_sessions (token_sha256, subject, display_name, role, issuer, csrf_token, created_at,"
        " last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        token_sha256,
        row.subject,
        row.display_name,
        row.role,
        row.issuer,
        row.csrf_token,
        row.created_at,
        row.last_seen_at,
    )


async def touch_session(
    conn: asyncpg.Connection, token_sha256: str, *, now: datetime, seen_after: datetime, created_after: datetime
) -> SessionRow | None:
    """The live session, its `last_seen_at` moved to `now`; None if unknown, ended, idle since `seen_after`, or
    opened before `created_after` (past its absolute lifetime)."""
    record = await conn.fetchrow(
        "UPDATE ui_sessions SET last_seen_at = $2 WHERE token_sha256 = $1 AND ended_at IS NULL"
        " AND last_seen_at > $3 AND created_at > $4"
        " RETURNING subject, display_name, role, issuer, csrf_token, created_at, last_seen_at",
        token_sha256,
        now,
        seen_after,
        created_after,
    )
    return None if record is None else _session_row(record)


async def end_session(conn: asyncpg.Connection, token_sha256: str, now: datetime) -> SessionRow | None:
    """Ends the session (it can never be resumed); the row as it was, or None if it was not live."""
    record = await conn.fetchrow(
        "UPDATE ui_sessions SET ended_at = $2 WHERE token_sha256 = $1 AND ended_at IS NULL"
        " RETURNING subject, display_name, role, issuer, csrf_token, created_at, last_seen_at",
        token_sha256,
        now,
    )
    return None if record is None else _session_row(record)


async def forget_idle_sessions(
    conn: asyncpg.Connection, seen_before: datetime, created_before: datetime | None = None
) -> int:
    """Deletes sessions ended or idle since before `seen_before`, or opened before `created_before`; how many."""
    result = await conn.execute(
        "DELETE FROM ui_sessions WHERE last_seen_at < $1 OR ended_at < $1 OR created_at < $2",
        seen_before,
        created_before,
    )
    return int(result.split()[-1])


async def leave_notice(conn: asyncpg.Connection, token_sha256: str, kind: str, text: str) -> None:
    """Keeps a notice for the session's next page (replacing any not yet shown)."""
    await conn.execute(
        "UPDATE ui_sessions SET notice_kind = $2, notice_text = $3 WHERE token_sha256 = $1 AND ended_at IS NULL",
        token_sha256,
        kind,
        text,
    )


async def take_notice(conn: asyncpg.Connection, token_sha256: str) -> tuple[str, str] | None:
    """The session's waiting notice (kind, text), cleared so it is shown once; None if there is none."""
    record = await conn.fetchrow(
        "WITH waiting AS (SELECT token_sha256, notice_kind, notice_text FROM ui_sessions"
        " WHERE token_sha256 = $1 AND notice_text IS NOT NULL FOR UPDATE)"
        " UPDATE ui_sessions s SET notice_kind = NULL, notice_text = NULL FROM waiting"
        " WHERE s.token_sha256 = waiting.token_sha256 RETURNING waiting.notice_kind, waiting.notice_text",
        token_sha256,
    )
    return None if record is None else (record["notice_kind"], record["notice_text"])


async def insert_attempt(conn: asyncpg.Connection, state_sha256: str, attempt: SignInAttempt) -> None:
    await conn.execute(
        "INSERT INTO ui_sign_in_attempts (state_sha256, nonce, code_verifier, redirect_uri, created_at)"
        " VALUES ($1, $2, $3, $4, $5)",
        state_sha256,
        attempt.nonce,
        attempt.code_verifier,
        attempt.redirect_uri,
        attempt.created_at,
    )


async def take_attempt(conn: asyncpg.Connection, state_sha256: str, created_after: datetime) -> SignInAttempt | None:
    """Removes and returns the attempt (each `state` is used once); None if unknown or older than allowed."""
    record = await conn.fetchrow(
        "DELETE FROM ui_sign_in_attempts WHERE state_sha256 = $1"
        " RETURNING nonce, code_verifier, redirect_uri, created_at",
        state_sha256,
    )
    if record is None or record["created_at"] <= created_after:
        return None
    return SignInAttempt(record["nonce"], record["code_verifier"], record["redirect_uri"], record["created_at"])


async def count_attempts(conn: asyncpg.Connection) -> int:
    """How many sign-ins are in flight (started, not yet finished or forgotten)."""
    return int(await conn.fetchval("SELECT count(*) FROM ui_sign_in_attempts"))


async def forget_stale_attempts(conn: asyncpg.Connection, created_before: datetime) -> int:
    result = await conn.execute("DELETE FROM ui_sign_in_attempts WHERE created_at < $1", created_before)
    return int(result.split()[-1])
