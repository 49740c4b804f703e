"""The worklist's reads: what needs someone, most urgent first, from open deadlines and pathway clocks.

An item is one of: `overdue` (an answer whose deadline has passed: the safety net's alerts), `smdt-outcome`
(a referral awaiting the SMDT's outcome), `transfer-response` (a transfer of care awaiting acceptance), or
`day-62` (a treatment target breached or within `horizon_days`, before treatment) / `day-38` (a transfer target
breached while the SMDT has not answered): what a breach is and the targets are pathway_breaches.py's, as of
`today` (the Europe/London date).
`due` orders them: the earliest first, so what is most overdue leads. Visibility (`party`) and filters are
applied here, in SQL, so that pages are counted and cut by the database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from service.store.pathway_breaches import breach_columns

UNTREATED_STATES = ("referred", "more-information-needed", "accepted", "transfer-requested")
AWAITING_SMDT_STATES = ("referred", "more-information-needed")

_ITEMS = f"""
WITH visible AS (
    SELECT e.id, e.state, e.referrer_ods, e.centre_ods, e.opened_at, e.pathway_start,
           e.snapshot -> 'ledger' -> -1 AS holder
    FROM episodes e
    WHERE ($1::text IS NULL OR e.referrer_ods = $1 OR e.centre_ods = $1
           OR EXISTS (SELECT 1 FROM episode_messages m WHERE m.episode_id = e.id AND m.sender_ods = $1)
           OR EXISTS (SELECT 1 FROM episode_messages m WHERE m.episode_id = e.id AND m.recipient_ods = $1))
      AND ($2::text IS NULL OR e.referrer_ods = $2)
      AND ($3::text IS NULL OR e.state = $3)
),
items AS (
    SELECT CASE WHEN d.due_at <= $4 THEN 'overdue' ELSE d.kind END AS item, d.episode_id, d.kind AS deadline,
           d.owed_by, d.waiting, d.due_at AS due, m.at AS since, d.alerted_at
    FROM deadlines d JOIN episode_messages m ON m.episode_id = d.episode_id AND m.message_id = d.message_id
    WHERE d.met_at IS NULL AND (d.due_at <= $4 OR d.kind IN ('smdt-outcome', 'transfer-response'))
    UNION ALL
    SELECT c.item, c.id, NULL, c.centre_ods, c.referrer_ods, c.due::timestamptz, c.opened_at, NULL
    FROM (
        SELECT e.id, e.centre_ods, e.referrer_ods, e.opened_at, e.state, {breach_columns("e", "$5::date")}
        FROM episodes e WHERE e.pathway_start IS NOT NULL AND e.state = ANY($7::text[])
    ) b
    CROSS JOIN LATERAL (
        SELECT 'day-62' AS item, b.treatment_target AS due, b.id, b.centre_ods, b.referrer_ods, b.opened_at
        WHERE b.treated_on IS NULL AND (b.day_62_breached OR b.treatment_target <= $5::date + $6::int)
        UNION ALL
        SELECT 'day-38', b.transfer_target, b.id, b.centre_ods, b.referrer_ods, b.opened_at
        WHERE b.day_38_breached AND b.state = ANY($8::text[])
    ) c
)
"""  # noqa: S608 - the breach columns are constant SQL


_FILTERED = (
    " FROM items i JOIN visible v ON v.id = i.episode_id"
    " WHERE (NOT $9::boolean OR i.due <= $4) AND ($10::text IS NULL OR i.owed_by = $10)"
)


@dataclass(frozen=True)
class WorklistItem:
    item: str
    episode_id: UUID
    state: str
    referrer_ods: str
    centre_ods: str
    deadline: str | None
    owed_by: str
    waiting: str
    due: datetime
    since: datetime
    alerted_at: datetime | None
    holder: dict[str, Any]


@dataclass(frozen=True)
class WorklistFilter:
    party: str | None  # a trust user's ODS: only episodes it refers, treats or exchanged messages in
    referrer: str | None
    state: str | None
    overdue_only: bool
    owed_by: str | None = None  # only what this organisation owes (the centre's queue)


def _arguments(where: WorklistFilter, now: datetime, today: date, horizon_days: int) -> list[Any]:
    return [
        where.party,
        where.referrer,
        where.state,
        now,
        today,
        horizon_days,
        list(UNTREATED_STATES),
        list(AWAITING_SMDT_STATES),
        where.overdue_only,
        where.owed_by,
    ]


async def worklist_page(
    conn: asyncpg.Connection,
    where: WorklistFilter,
    *,
    now: datetime,
    today: date,
    horizon_days: int,
    limit: int,
    offset: int,
) -> tuple[list[WorklistItem], int]:
    """One page of items, most urgent first, and how many items there are in all."""
    args = _arguments(where, now, today, horizon_days)
    records = await conn.fetch(
        _ITEMS + "SELECT i.*, v.state, v.referrer_ods, v.centre_ods, v.holder"
        f"{_FILTERED} ORDER BY i.due, i.episode_id, i.item LIMIT $11 OFFSET $12",
        *args,
        limit,
        offset,
    )
    total = await conn.fetchval(_ITEMS + f"SELECT count(*){_FILTERED}", *args)
    return [
        WorklistItem(
            r["item"],
            r["episode_id"],
            r["state"],
            r["referrer_ods"],
            r["centre_ods"],
            r["deadline"],
            r["owed_by"],
            r["waiting"],
            r["due"],
            r["since"],
            r["alerted_at"],
            json.loads(r["holder"]) if r["holder"] else {},
        )
        for r in records
    ], int(total)


async def find_by_nhs_number(conn: asyncpg.Connection, nhs_number_hmac: str, party: str | None) -> list[UUID]:
    """Episode ids of the patient (by the keyed hash of the NHS number) that `party` (if given) may see."""
    records = await conn.fetch(
        """
        SELECT e.id FROM episodes e WHERE e.nhs_number_hmac = $1
          AND ($2::text IS NULL OR e.referrer_ods = $2 OR e.centre_ods = $2
               OR EXISTS (SELECT 1 FROM episode_messages m WHERE m.episode_id = e.id
                          AND (m.sender_ods = $2 OR m.recipient_ods = $2)))
        ORDER BY e.opened_at DESC
        """,
        nhs_number_hmac,
        party,
    )
    return [r["id"] for r in records]


async def worklist_plan(
    conn: asyncpg.Connection, where: WorklistFilter, *, now: datetime, today: date, horizon_days: int
) -> list[str]:
    """EXPLAIN ANALYZE of the first page's statement (for bench/worklist.py: which indexes it uses)."""
    records = await conn.fetch(
        "EXPLAIN (ANALYZE, COSTS OFF) " + _ITEMS + f"SELECT i.*{_FILTERED} ORDER BY i.due, i.episode_id LIMIT 25",
        *_arguments(where, now, today, horizon_days),
    )
    return [str(r[0]) for r in records]
