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
    conn: asyncpg.Connection, token_sha256: str, *, now: datetime, seen_after: datetime
) -> SessionRow | None:
    """The live session, its `last_seen_at` moved to `now`; None if unknown, ended, or idle since `seen_after`."""
    record = await conn.fetchrow(
        "UPDATE ui_sessions SET last_seen_at = $2 WHERE token_sha256 = $1 AND ended_at IS NULL"
        " AND last_seen_at > $3"
        " RETURNING subject, display_name, role, issuer, csrf_token, created_at, last_seen_at",
        token_sha256,
        now,
        seen_after,
    )
    if record is None:
        return None
    return SessionRow(
        record["subject"],
        record["display_name"],
        record["role"],
        record["issuer"],
        record["csrf_token"],
        record["created_at"],
        record["last_seen_at"],
    )


async def end_session(conn: asyncpg.Connection, token_sha256: str, now: datetime) -> SessionRow | None:
    """Ends the session (it can never be resumed); the row as it was, or None if it was not live."""
    record = await conn.fetchrow(
        "UPDATE ui_sessions SET ended_at = $2 WHERE token_sha256 = $1 AND ended_at IS NULL"
        " RETURNING subject, display_name, role, issuer, csrf_token, created_at, last_seen_at",
        token_sha256,
        now,
    )
    if record is None:
        return None
    return SessionRow(
        record["subject"],
        record["display_name"],
        record["role"],
        record["issuer"],
        record["csrf_token"],
        record["created_at"],
        record["last_seen_at"],
    )


async def forget_idle_sessions(conn: asyncpg.Connection, seen_before: datetime) -> int:
    """Deletes sessions ended or idle since before `seen_before`; how many."""
    result = await conn.execute("DELETE FROM ui_sessions WHERE last_seen_at < $1 OR ended_at < $1", seen_before)
    return int(result.split()[-1])


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


async def forget_stale_attempts(conn: asyncpg.Connection, created_before: datetime) -> int:
    result = await conn.execute("DELETE FROM ui_sign_in_attempts WHERE created_at < $1", created_before)
    return int(result.split()[-1])
