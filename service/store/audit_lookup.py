"""Looking things up in the audit log for the audit page: one entry by index, a message's acceptance entry, and
the latest events of given types (e.g. payload reads). Leaves are returned as stored; callers check hashes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from service.store.audit_reads import StoredLeaf


@dataclass(frozen=True)
class LoggedEvent:
    index: int
    event_type: str
    outcome: str
    actor: str
    message_id: UUID | None
    recorded_at: datetime
    details: dict[str, Any]


async def leaf_at(conn: asyncpg.Connection, index: int) -> StoredLeaf | None:
    row = await conn.fetchrow("SELECT seq, leaf, leaf_hash FROM audit_events WHERE seq = $1", index)
    return None if row is None else StoredLeaf(int(row["seq"]), bytes(row["leaf"]), bytes(row["leaf_hash"]))


async def acceptance_leaf(conn: asyncpg.Connection, message_id: UUID) -> StoredLeaf | None:
    """The entry that recorded the message's acceptance (the one its receipt names)."""
    row = await conn.fetchrow(
        "SELECT seq, leaf, leaf_hash FROM audit_events WHERE message_id = $1 AND event_type = 'message-accepted'"
        " ORDER BY seq LIMIT 1",
        message_id,
    )
    return None if row is None else StoredLeaf(int(row["seq"]), bytes(row["leaf"]), bytes(row["leaf_hash"]))


async def latest_events(conn: asyncpg.Connection, event_type: str, limit: int) -> list[LoggedEvent]:
    """The newest `limit` events of `event_type`, newest first."""
    rows = await conn.fetch(
        "SELECT seq, event_type, outcome, actor, message_id, recorded_at, leaf FROM audit_events"
        " WHERE event_type = $1 ORDER BY seq DESC LIMIT $2",
        event_type,
        limit,
    )
    return [
        LoggedEvent(
            int(r["seq"]),
            r["event_type"],
            r["outcome"],
            r["actor"],
            r["message_id"],
            r["recorded_at"],
            json.loads(bytes(r["leaf"])).get("details", {}),
        )
        for r in rows
    ]
