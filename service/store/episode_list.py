"""Every episode a role may see, filtered, sorted and cut into pages by PostgreSQL (the staff pages'
`/ui/episodes` and its CSV), with how many match in all and per state.

Filters (all optional, combined with AND): `party` (visibility: a trust user sees the episodes its trust refers,
treats, or exchanged messages in), `trust` (the referring trust), `states` (any of), `responsible` (the ODS code of the
organisation clinically responsible now), `opened_from` / `opened_to` (UTC calendar dates of the referral, both
inclusive), `overdue` (an answer is overdue), `breach` (`day-38`, `day-62` or `any` cancer pathway clock
breach) and `milestone` (`accepted`: the SMDT accepted; `resection`: the centre sent a discharge summary, the
same rules as the governance figures). Every breach is listed, whatever the state; what a breach is, is
pathway_breaches.py's, as of `today` (the Europe/London date).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from service.store.pathway_breaches import breach_columns

SORTS = {
    "newest": "c.opened_at DESC, c.id",
    "oldest": "c.opened_at, c.id",
    "updated": "c.updated_at DESC, c.id",
    "trust": "c.referrer_ods, c.opened_at DESC, c.id",
    "state": "c.state, c.opened_at DESC, c.id",
    "pathway": "c.pathway_start NULLS LAST, c.id",
}
BREACHES = ("day-38", "day-62", "any")
MILESTONES = ("accepted", "resection")

_CHOSEN = f"""
WITH chosen AS (
    SELECT e.id, e.state, e.referrer_ods, e.centre_ods, e.opened_at, e.updated_at, e.pathway_start,
           e.treatment_date, e.key_worker_name, e.key_worker_ods, e.snapshot -> 'ledger' -> -1 -> 'clinician' AS holder,
           {breach_columns("e", "$9::date")},
           (SELECT count(*) FROM deadlines d
             WHERE d.episode_id = e.id AND d.met_at IS NULL AND d.due_at <= $8) AS overdue
    FROM episodes e
    WHERE ($1::text IS NULL OR e.referrer_ods = $1 OR e.centre_ods = $1
           OR EXISTS (SELECT 1 FROM episode_messages m WHERE m.episode_id = e.id AND m.sender_ods = $1)
           OR EXISTS (SELECT 1 FROM episode_messages m WHERE m.episode_id = e.id AND m.recipient_ods = $1))
      AND ($2::text IS NULL OR e.referrer_ods = $2)
      AND ($3::text[] IS NULL OR e.state = ANY($3::text[]))
      AND ($4::text IS NULL OR e.snapshot -> 'ledger' -> -1 -> 'clinician' ->> 'ods' = $4)
      AND ($5::date IS NULL OR (e.opened_at AT TIME ZONE 'UTC')::date >= $5)
      AND ($6::date IS NULL OR (e.opened_at AT TIME ZONE 'UTC')::date <= $6)
      AND ($7::text IS NULL OR EXISTS (
            SELECT 1 FROM episode_messages x WHERE x.episode_id = e.id AND x.changed
              AND x.kind = CASE $7 WHEN 'accepted' THEN 'outcome-accepted' ELSE 'discharge-summary' END))
)
"""  # noqa: S608 - the breach columns are constant SQL
_WHERE = (
    " FROM chosen c WHERE (NOT $10::boolean OR c.overdue > 0)"
    " AND ($11::text IS NULL OR ($11 IN ('day-38', 'any') AND c.day_38_breached)"
    " OR ($11 IN ('day-62', 'any') AND c.day_62_breached))"
)


@dataclass(frozen=True)
class EpisodeFilter:
    party: str | None = None
    trust: str | None = None
    states: tuple[str, ...] = ()  # any of these (none: every state)
    responsible: str | None = None
    opened_from: date | None = None
    opened_to: date | None = None
    overdue: bool = False
    breach: str | None = None  # one of BREACHES
    milestone: str | None = None  # one of MILESTONES


@dataclass(frozen=True)
class ListedEpisode:
    id: UUID
    state: str
    referrer_ods: str
    centre_ods: str
    opened_at: datetime
    updated_at: datetime
    pathway_start: date | None
    treatment_date: date | None
    key_worker_name: str | None
    key_worker_ods: str | None
    responsible_name: str
    responsible_ods: str
    overdue: int
    day38_breached: bool
    day62_breached: bool


def _arguments(where: EpisodeFilter, now: datetime, today: date) -> list[Any]:
    return [
        where.party,
        where.trust,
        list(where.states) or None,
        where.responsible,
        where.opened_from,
        where.opened_to,
        where.milestone if where.milestone in MILESTONES else None,
        now,
        today,
        where.overdue,
        where.breach if where.breach in BREACHES else None,
    ]


def _listed(r: asyncpg.Record) -> ListedEpisode:
    holder = json.loads(r["holder"]) if r["holder"] else {}
    return ListedEpisode(
        r["id"],
        r["state"],
        r["referrer_ods"],
        r["centre_ods"],
        r["opened_at"],
        r["updated_at"],
        r["pathway_start"],
        r["treatment_date"],
        r["key_worker_name"],
        r["key_worker_ods"],
        str(holder.get("name", "")),
        str(holder.get("ods", "")),
        int(r["overdue"]),
        bool(r["day_38_breached"]),
        bool(r["day_62_breached"]),
    )


async def list_page(
    conn: asyncpg.Connection,
    where: EpisodeFilter,
    *,
    now: datetime,
    today: date,
    sort: str,
    limit: int,
    offset: int,
) -> list[ListedEpisode]:
    """One page of the matching episodes in `sort` order (a key of SORTS; unknown: newest first)."""
    order = SORTS.get(sort, SORTS["newest"])
    records = await conn.fetch(
        f"{_CHOSEN}SELECT c.*{_WHERE} ORDER BY {order} LIMIT $12 OFFSET $13",
        *_arguments(where, now, today),
        limit,
        offset,
    )
    return [_listed(r) for r in records]


async def count_by_state(
    conn: asyncpg.Connection, where: EpisodeFilter, *, now: datetime, today: date
) -> dict[str, int]:
    """How many episodes match, per state (the total is the sum)."""
    records = await conn.fetch(
        f"{_CHOSEN}SELECT c.state, count(*) AS n{_WHERE} GROUP BY c.state",
        *_arguments(where, now, today),
    )
    return {r["state"]: int(r["n"]) for r in records}
