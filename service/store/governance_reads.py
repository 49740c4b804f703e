"""Governance figures per referring trust and year, computed set-based in PostgreSQL (one statement, however
many episodes): referrals, SMDT acceptances, resections, overdue answers, and the medians of referral → first
SMDT outcome (days) and transfer request → acceptance (hours).

The rules (service/episodes/governance.py explains them): an episode counts in the year its referral opened it
(UTC); "accepted" and "resection" count messages that changed the episode (`changed`); a transfer acceptance is
paired with the request it answers (the changing request just before it); overdue = open deadlines due by `now`;
the clock breaches are counted as the worklist shows them (service/store/worklist_reads.py): a day-62 breach of a
pathway not yet treated, and a day-38 breach of one awaiting the SMDT; what a breach is, is pathway_breaches.py's,
as of the Europe/London date of `now`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from service.store.pathway_breaches import breach_columns, london_today
from service.store.worklist_reads import AWAITING_SMDT_STATES, UNTREATED_STATES

# Whole-table aggregates: PostgreSQL reads episodes and their messages once each (sequentially, which at these
# volumes beats any index) and finds the overdue deadlines through deadlines_open_idx.
FIGURES_SQL = f"""
WITH per_episode AS MATERIALIZED (
    SELECT e.id, e.referrer_ods, extract(year FROM e.opened_at AT TIME ZONE 'UTC')::int AS year,
           extract(epoch FROM m.first_outcome_at - e.opened_at) / 86400 AS outcome_days,
           e.state = ANY($3::text[]) AND b.day_38_breached AS day_38_breached,
           e.state = ANY($2::text[]) AND b.day_62_breached AS day_62_breached,
           coalesce(m.accepted, false) AS accepted, coalesce(m.resected, false) AS resected
    FROM episodes e
    CROSS JOIN LATERAL (SELECT {breach_columns("e", london_today("$1"))}) b
    LEFT JOIN (
        SELECT x.episode_id,
               min(x.at) FILTER (WHERE x.kind IN ('outcome-accepted', 'outcome-declined',
                                                  'outcome-more-information-needed')) AS first_outcome_at,
               bool_or(x.changed AND x.kind = 'outcome-accepted') AS accepted,
               bool_or(x.changed AND x.kind = 'discharge-summary') AS resected
        FROM episode_messages x
        WHERE x.kind IN ('outcome-accepted', 'outcome-declined', 'outcome-more-information-needed',
                         'discharge-summary', 'transfer-requested', 'transfer-accepted')
        GROUP BY x.episode_id
    ) m ON m.episode_id = e.id
),
transfers AS (
    SELECT t.episode_id, t.kind, t.at,
           lag(t.kind) OVER w AS previous_kind, lag(t.at) OVER w AS previous_at
    FROM episode_messages t
    WHERE t.changed AND t.kind IN ('transfer-requested', 'transfer-accepted')
    WINDOW w AS (PARTITION BY t.episode_id ORDER BY t.at, t.message_id)
),
acceptance AS (
    SELECT p.referrer_ods, p.year,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM t.at - t.previous_at) / 3600) AS hours
    FROM transfers t JOIN per_episode p ON p.id = t.episode_id
    WHERE t.kind = 'transfer-accepted' AND t.previous_kind = 'transfer-requested'
    GROUP BY p.referrer_ods, p.year
),
overdue AS (
    SELECT p.referrer_ods, p.year, count(*) AS n
    FROM deadlines d JOIN per_episode p ON p.id = d.episode_id
    WHERE d.met_at IS NULL AND d.due_at <= $1
    GROUP BY p.referrer_ods, p.year
),
volumes AS (
    SELECT referrer_ods, year, count(*) AS referrals,
           count(*) FILTER (WHERE accepted) AS accepted,
           count(*) FILTER (WHERE resected) AS resections,
           count(*) FILTER (WHERE day_38_breached) AS day_38_breaches,
           count(*) FILTER (WHERE day_62_breached) AS day_62_breaches,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY outcome_days)
               FILTER (WHERE outcome_days IS NOT NULL) AS outcome_days
    FROM per_episode GROUP BY referrer_ods, year
)
SELECT v.referrer_ods, v.year, v.referrals, v.accepted, v.resections, coalesce(o.n, 0) AS overdue,
       v.day_38_breaches, v.day_62_breaches,
       v.outcome_days, a.hours AS acceptance_hours
FROM volumes v
LEFT JOIN acceptance a USING (referrer_ods, year)
LEFT JOIN overdue o USING (referrer_ods, year)
ORDER BY v.referrer_ods, v.year
"""  # noqa: S608 - the breach columns are constant SQL


def _arguments(now: datetime) -> list[Any]:
    """$1 now; $2 the untreated states and $3 the states awaiting the SMDT, as the worklist counts clock items."""
    return [now, list(UNTREATED_STATES), list(AWAITING_SMDT_STATES)]


@dataclass(frozen=True)
class TrustYearFigures:
    """One referring trust's figures for one year (medians None when nothing was measured)."""

    trust: str
    year: int
    referrals: int
    accepted: int
    resections: int
    overdue: int
    median_days_referral_to_outcome: float | None
    median_hours_transfer_acceptance: float | None
    day_38_breaches: int = 0  # awaiting the SMDT, and day 38 breached (pathway_breaches.py)
    day_62_breaches: int = 0  # untreated, and day 62 breached (pathway_breaches.py)

    @property
    def overdue_items(self) -> int:
        """Everything overdue, as the worklist shows it: answers past their deadline and breached pathway clocks."""
        return self.overdue + self.day_38_breaches + self.day_62_breaches


async def trust_year_figures(conn: asyncpg.Connection, now: datetime) -> list[TrustYearFigures]:
    """Every referring trust's figures per year, ordered by trust then year; overdue as at `now`."""
    records = await conn.fetch(FIGURES_SQL, *_arguments(now))
    return [
        TrustYearFigures(
            r["referrer_ods"],
            r["year"],
            int(r["referrals"]),
            int(r["accepted"]),
            int(r["resections"]),
            int(r["overdue"]),
            None if r["outcome_days"] is None else float(r["outcome_days"]),
            None if r["acceptance_hours"] is None else float(r["acceptance_hours"]),
            int(r["day_38_breaches"]),
            int(r["day_62_breaches"]),
        )
        for r in records
    ]


async def explain_figures(conn: asyncpg.Connection, now: datetime) -> list[str]:
    """The executed plan of `trust_year_figures` (for the benchmark's report on index use)."""
    rows = await conn.fetch(f"EXPLAIN (ANALYZE, COSTS OFF) {FIGURES_SQL}", *_arguments(now))
    return [r[0] for r in rows]
