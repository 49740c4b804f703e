"""Audit events for actions outside message intake: registry key changes and staff sign-ins.

Each is appended in its own transaction (there is no other write to share one with). A staff token is
recorded as a login the first time it is used, using the single-use token table to remember it.
"""

from __future__ import annotations

import asyncpg

from service.auditlog import appending
from service.auditlog.events import AuditEvent, EventType
from service.clock import Clock, utc_now
from service.identity.registry import Registry, ReloadResult
from service.identity.staff import StaffIdentity
from service.store import db, tokens


async def record_key_changes(
    pool: asyncpg.Pool, result: ReloadResult, registry: Registry, actor: str, clock: Clock = utc_now
) -> int:
    """One `key-changed` event per kid the reload added, removed or changed; returns how many."""
    if not result.ok:
        return 0
    changes = [("added", kid) for kid in result.added] + [("removed", kid) for kid in result.removed]
    changes += [("changed", kid) for kid in result.changed]
    if not changes:
        return 0
    async with db.transaction(pool) as conn:
        for change, kid in changes:
            entry = registry.key(kid) or registry.hub_key(kid)
            details = {"kid": kid, "change": change}
            if entry is not None:
                details |= {"owner": entry.owner_ods, "status": entry.status}
            await appending.append_event(
                conn, AuditEvent(EventType.KEY_CHANGED, "applied", actor, clock(), details=details)
            )
    return len(changes)


async def record_staff_login(pool: asyncpg.Pool, identity: StaffIdentity, issuer: str, clock: Clock = utc_now) -> bool:
    """A `staff-login` event the first time this staff token is seen; True if it was the first time."""
    async with db.transaction(pool) as conn:
        if not await tokens.remember_token_id(conn, f"staff:{identity.user}", identity.token_id, identity.expires_at):
            return False
        await appending.append_event(
            conn,
            AuditEvent(
                EventType.STAFF_LOGIN,
                "signed-in",
                identity.user,
                clock(),
                details={"role": identity.role.value, "issuer": issuer},
            ),
        )
    return True
