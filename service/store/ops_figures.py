"""The operational figures /metrics reads from the database at scrape time: shared state of every hub process.

Delivery queues (pending deliveries per recipient and the oldest one's acceptance time), dead letters per
recipient, the audit log's size and latest checkpoint, and the safety net's alerts by kind (from their audit
events). One read-only statement each, served by indexes (migrations 0003, 0010).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True)
class QueueFigures:
    """Pending deliveries to one recipient (push and mailbox alike) and when the oldest was accepted."""

    depth: int
    oldest_created_at: datetime


@dataclass(frozen=True)
class OperationsFigures:
    queues: dict[str, QueueFigures]
    dead_letters: dict[str, int]
    audit_entries: int
    checkpoint_size: int | None
    checkpoint_signed_at: datetime | None
    alerts_sent: dict[str, int]


async def read_figures(conn: asyncpg.Connection) -> OperationsFigures:
    """Every figure in one REPEATABLE READ snapshot, so they agree with each other."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        queues = await conn.fetch(
            "SELECT recipient_ods, count(*) AS depth, min(created_at) AS oldest FROM deliveries"
            " WHERE state = 'pending' GROUP BY recipient_ods"
        )
        dead = await conn.fetch(
            "SELECT recipient_ods, count(*) AS n FROM deliveries WHERE state = 'dead_letter' GROUP BY recipient_ods"
        )
        entries = await conn.fetchval("SELECT coalesce(max(seq) + 1, 0) FROM audit_events")
        checkpoint = await conn.fetchrow(
            "SELECT tree_size, signed_at FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1"
        )
        alerts = await conn.fetch(
            "SELECT outcome, count(*) AS n FROM audit_events WHERE event_type = 'alert-sent' GROUP BY outcome"
        )
    return OperationsFigures(
        queues={r["recipient_ods"]: QueueFigures(int(r["depth"]), r["oldest"]) for r in queues},
        dead_letters={r["recipient_ods"]: int(r["n"]) for r in dead},
        audit_entries=int(entries),
        checkpoint_size=None if checkpoint is None else int(checkpoint["tree_size"]),
        checkpoint_signed_at=None if checkpoint is None else checkpoint["signed_at"],
        alerts_sent={_kind(r["outcome"]): int(r["n"]) for r in alerts},
    )


def _kind(outcome: str) -> str:
    """An alert's outcome is ``<kind>-overdue``; the kind is the deadline's."""
    return outcome.removesuffix("-overdue")
