"""Appending audit events to the log: an event becomes its leaf bytes and leaf hash here, and the store
(service/store/audit.py) writes those rows inside the caller's transaction, taking the sequencer's lock.

Keep an append the last statement before COMMIT: the lock is held until then.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from service.auditlog.events import AuditEvent, leaf_hash
from service.store.audit import AppendedLeaf, LeafRow, append_rows


def leaf_row(event: AuditEvent) -> LeafRow:
    """The stored form of `event`: its columns, its RFC 8785 leaf and the leaf's hash."""
    leaf = event.leaf()
    return LeafRow(event.type.value, event.outcome, event.actor, event.message_id, event.at, leaf, leaf_hash(leaf))


async def append_event(conn: asyncpg.Connection, event: AuditEvent) -> AppendedLeaf:
    """Append `event` to the log in the current transaction; returns its index and leaf hash."""
    (appended,) = await append_events(conn, [event])
    return appended


async def append_events(conn: asyncpg.Connection, events: Sequence[AuditEvent]) -> list[AppendedLeaf]:
    """Append `events`, in order, in one round trip; their indexes and leaf hashes. The sequencer's lock is held
    from here until COMMIT: make this the last write before COMMIT."""
    return await append_rows(conn, [leaf_row(event) for event in events])
