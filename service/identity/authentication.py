"""Authenticating callers: trusts (a verified bearer token whose jti has not been used before) and staff
(a token from the staff identity provider carrying a role that the endpoint admits). Identity sits below the
audit log: a staff sign-in is recorded through the `SignInRecorder` the hub hands in
(service/auditlog/recording.py `record_staff_login`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from service.clock import Clock, utc_now
from service.errors import Code, HandoverError
from service.identity.roles import StaffRole
from service.identity.signing import KeyLookup
from service.identity.staff import StaffIdentity, StaffIdentityProvider
from service.identity.tokens import TokenClaims, verify_bearer_token
from service.store import db, tokens

SignInRecorder = Callable[[StaffIdentity, str], Awaitable[object]]
"""Records a staff sign-in (the identity and the provider's issuer) in the audit log, once per token."""


class TrustAuthenticator:
    """Turns a bearer token into the calling trust's ODS code. Arguments: the pool (for single-use jti),
    an in-memory key lookup (the registry's), and a clock."""

    def __init__(self, pool: asyncpg.Pool, keys: KeyLookup, clock: Clock = utc_now) -> None:
        self._pool = pool
        self._keys = keys
        self._clock = clock

    async def authenticate(self, token: str) -> str:
        """The caller's ODS code, the token's jti consumed now (its own one-statement transaction)."""
        claims = self.verify(token)
        async with db.connection(self._pool) as conn:
            await consume_token(conn, claims)
        return claims.issuer

    def verify(self, token: str) -> TokenClaims:
        """The verified claims, jti not yet consumed: the caller must `consume_token` in the transaction that
        records what the request did (an acceptance or a refusal), so a request costs one commit, not two."""
        return verify_bearer_token(token, self._keys, now=self._clock())


async def consume_token(conn: asyncpg.Connection, claims: TokenClaims) -> None:
    """Record the token's jti; 401 `unauthenticated` if it was used before (a replay). A concurrent use of the
    same token waits here for the other transaction, and loses if that one commits."""
    if not await tokens.remember_token_id(conn, claims.issuer, claims.jti, claims.expires_at):
        raise token_replayed()


def token_replayed() -> HandoverError:
    """401 `unauthenticated` for a bearer token whose jti was used before."""
    return HandoverError(Code.UNAUTHENTICATED, "this bearer token was already used: mint a new one (new jti)")


class StaffAuthenticator:
    """Turns a staff bearer token into a `StaffIdentity` whose role the endpoint admits (else 403); the first
    use of each token is audited as a sign-in."""

    def __init__(self, provider: StaffIdentityProvider, record_sign_in: SignInRecorder, clock: Clock = utc_now) -> None:
        self._provider = provider
        self._record_sign_in = record_sign_in
        self._clock = clock

    def recognises(self, token: str) -> bool:
        """Whether this looks like a staff token rather than a trust's (which key signed it)."""
        return self._provider.issued(token)

    async def authenticate(self, token: str, allowed: frozenset[StaffRole]) -> StaffIdentity:
        identity = self._provider.verify(token, now=utc_now())
        await self._record_sign_in(identity, self._provider.issuer)
        if identity.role not in allowed:
            raise HandoverError(Code.FORBIDDEN, f"the {identity.role} role may not do this")
        return identity
