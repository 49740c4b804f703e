"""The duties: each removes what has outlived its table's lifetime, in bounded batches, and says how many rows.

* ``used-token-ids``: the ids (jti) of bearer tokens, trusts' and staff's, once the token expired more than
  the clock allowance ago (a token is refused on its expiry before its jti is looked at, so the id proves
  nothing any more; the allowance covers a replica whose clock runs behind). Not audited: the request each
  token carried is in the audit log already, and the id itself is not evidence of anything.
* ``staff-sign-ins``: staff page sessions ended or idle longer than the idle timeout (they can never be resumed),
  and OIDC sign-ins in flight older than the time a sign-in may take. Not audited: sign-in and sign-out are
  audited when they happen; the row is only the server's half of a cookie that no longer works.
* ``payload-retention``: crypto-shredding of payloads past their retention (service/crypto/retention.py), on
  HANDOVER_RETENTION_SWEEP_SECONDS; each shredding is audited there, in the transaction that does it.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Protocol

import asyncpg

from service.clock import Clock, utc_now
from service.crypto.retention import PayloadRetention
from service.identity.tokens import CLOCK_SKEW
from service.store import tokens, ui_sessions

TOKEN_ID_BATCH = 5000


class Duty(Protocol):
    """One lifetime rule. `run` removes everything now due (in batches, stopping early when `stopping` is set)
    on `conn`, which holds the duty's lock, or on its own pool; returns how many rows it removed."""

    @property
    def name(self) -> str: ...

    @property
    def every(self) -> timedelta: ...

    async def run(self, conn: asyncpg.Connection, stopping: asyncio.Event) -> int: ...


class ForgetExpiredTokenIds:
    """Drops `used_token_ids` rows whose token expired more than `grace` ago (real time: credentials always
    expire by the real clock), `batch` rows per transaction."""

    name = "used-token-ids"

    def __init__(
        self, every: timedelta, *, grace: timedelta = CLOCK_SKEW, batch: int = TOKEN_ID_BATCH, clock: Clock = utc_now
    ) -> None:
        self.every = every
        self._grace = grace
        self._batch = batch
        self._clock = clock

    async def run(self, conn: asyncpg.Connection, stopping: asyncio.Event) -> int:
        total = 0
        while not stopping.is_set():
            async with conn.transaction():
                removed = await tokens.forget_expired_token_ids(conn, self._clock() - self._grace, limit=self._batch)
            total += removed
            if removed < self._batch:
                break
        return total


class ForgetStaleSignIns:
    """Drops `ui_sessions` rows ended or idle for longer than `idle` or opened longer than `lifetime` ago, and
    `ui_sign_in_attempts` older than `sign_in` (an attempt is taken once, on the redirect back; one never finished
    stays behind)."""

    name = "staff-sign-ins"

    def __init__(
        self,
        every: timedelta,
        *,
        idle: timedelta,
        sign_in: timedelta,
        lifetime: timedelta | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.every = every
        self._idle, self._sign_in, self._lifetime = idle, sign_in, lifetime
        self._clock = clock

    async def run(self, conn: asyncpg.Connection, stopping: asyncio.Event) -> int:
        now = self._clock()
        async with conn.transaction():
            lived = None if self._lifetime is None else now - self._lifetime
            sessions = await ui_sessions.forget_idle_sessions(conn, now - self._idle, lived)
            attempts = await ui_sessions.forget_stale_attempts(conn, now - self._sign_in)
        return sessions + attempts


class ShredExpiredPayloads:
    """Payload retention as a housekeeping duty: `PayloadRetention.shred_expired` (its own batches and audit)."""

    name = "payload-retention"

    def __init__(self, retention: PayloadRetention, every: timedelta) -> None:
        self.every = every
        self._retention = retention

    async def run(self, conn: asyncpg.Connection, stopping: asyncio.Event) -> int:
        return await self._retention.shred_expired()
