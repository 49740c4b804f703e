"""Single-use bearer tokens: every `jti` seen is kept until its token expires (then housekeeping drops it)."""

from __future__ import annotations

from datetime import datetime

import asyncpg


async def remember_token_id(conn: asyncpg.Connection, issuer: str, jti: str, expires_at: datetime) -> bool:
    """Record (issuer, jti); False if it was already used (a replay)."""
    inserted = await conn.fetchval(
        "INSERT INTO used_token_ids (issuer, jti, expires_at) VALUES ($1, $2, $3) "
        "ON CONFLICT (issuer, jti) DO NOTHING RETURNING true",
        issuer,
        jti,
        expires_at,
    )
    return bool(inserted)


async def forget_expired_token_ids(conn: asyncpg.Connection, before: datetime, *, limit: int) -> int:
    """Drop up to `limit` ids of tokens that expired before `before` (they can no longer be replayed: an expired
    token is refused before its jti is looked at); returns how many."""
    status: str = await conn.execute(
        """
        DELETE FROM used_token_ids WHERE (issuer, jti) IN (
            SELECT issuer, jti FROM used_token_ids WHERE expires_at < $1
            ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED
        )
        """,
        before,
        limit,
    )
    return int(status.rsplit(" ", 1)[-1])
