"""Governance figures per referring trust and year, computed set-based in PostgreSQL (one statement, however
many episodes): referrals, SMDT acceptances, resections, overdue answers, and the medians of referral → first
SMDT outcome (days) and transfer request → acceptance (hours).

The rules (service/episodes/governance.py explains them): an episode counts in the year its referral opened it
(UTC); "accepted" and "resection" count messages that changed the episode (`changed`); a transfer acceptance is
paired with the request it answers (the changing request just before it); overdue = open deadlines due by `now`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

# Whole-table aggregates: PostgreSQL reads episodes and their messages once each (sequentially, which at these
# volumes beats any index) and finds the overdue deadlines through deadlines_open_idx.
FIGURES_SQL = """
WITH per_episode AS MATERIALIZED (
    SELECT e.id, e.referrer_ods, extract(year FROM e.opened_at AT TIME ZONE 'UTC')::int AS year,
           extract(epoch FROM m.first_outcome_at - e.opened_at) / 86400 AS outcome_days,
           coalesce(m.accepted, false) AS accepted, coalesce(m.resected, false) AS resected
    FROM episodes e
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
           percentile_cont(0.5) WITHIN GROUP (ORDER BY outcome_days)
               FILTER (WHERE outcome_days IS NOT NULL) AS outcome_days
    FROM per_episode GROUP BY referrer_ods, year
)
SELECT v.referrer_ods, v.year, v.referrals, v.accepted, v.resections, coalesce(o.n, 0) AS overdue,
       v.outcome_days, a.hours AS acceptance_hours
FROM volumes v
LEFT JOIN acceptance a USING (referrer_ods, year)
LEFT JOIN overdue o USING (referrer_ods, year)
ORDER BY v.referrer_ods, v.year
"""


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


async def trust_year_figures(conn: asyncpg.Connection, now: datetime) -> list[TrustYearFigures]:
    """Every referring trust's figures per year, ordered by trust then year; overdue as at `now`."""
    records = await conn.fetch(FIGURES_SQL, now)
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
        )
        for r in records
    ]


async def explain_figures(conn: asyncpg.Connection, now: datetime) -> list[str]:
    """The executed plan of `trust_year_figures` (for the benchmark's report on index use)."""
    rows = await conn.fetch(f"EXPLAIN (ANALYZE, COSTS OFF) {FIGURES_SQL}", now)
    return [r[0] for r in rows]
