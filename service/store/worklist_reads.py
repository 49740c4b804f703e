"""The worklist's reads: what needs someone, most urgent first, from open deadlines and pathway clocks.

An item is one of: `overdue` (an answer whose deadline has passed: the safety net's alerts), `smdt-outcome`
(a referral awaiting the SMDT's outcome), `transfer-response` (a transfer of care awaiting acceptance), or
`day-62` / `day-38` (a pathway clock breached or within `horizon_days` of its target, before treatment).
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

UNTREATED_STATES = ("referred", "more-information-needed", "accepted", "transfer-requested")
AWAITING_SMDT_STATES = ("referred", "more-information-needed")

_ITEMS = """
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
    SELECT 'day-62', e.id, NULL, e.centre_ods, e.referrer_ods, (e.pathway_start + 62)::timestamptz, e.opened_at, NULL
    FROM episodes e
    WHERE e.pathway_start IS NOT NULL AND e.pathway_start <= $5::date - 62 + $6::int
      AND e.state = ANY($7::text[])
    UNION ALL
    SELECT 'day-38', e.id, NULL, e.centre_ods, e.referrer_ods, (e.pathway_start + 38)::timestamptz, e.opened_at, NULL
    FROM episodes e
    WHERE e.pathway_start IS NOT NULL AND e.opened_at::date > e.pathway_start + 38
      AND e.state = ANY($8::text[])
)
"""


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
    filtered = " FROM items i JOIN visible v ON v.id = i.episode_id WHERE (NOT $9::boolean OR i.due <= $4)"
    records = await conn.fetch(
        _ITEMS + "SELECT i.*, v.state, v.referrer_ods, v.centre_ods, v.holder"
        f"{filtered} ORDER BY i.due, i.episode_id, i.item LIMIT $10 OFFSET $11",
        *args,
        limit,
        offset,
    )
    total = await conn.fetchval(_ITEMS + f"SELECT count(*){filtered}", *args)
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
    filtered = " FROM items i JOIN visible v ON v.id = i.episode_id WHERE (NOT $9::boolean OR i.due <= $4)"
    records = await conn.fetch(
        "EXPLAIN (ANALYZE, COSTS OFF) " + _ITEMS + f"SELECT i.*{filtered} ORDER BY i.due, i.episode_id LIMIT 25",
        *_arguments(where, now, today, horizon_days),
    )
    return [str(r[0]) for r in records]
