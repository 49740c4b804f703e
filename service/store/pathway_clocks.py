"""Cancer pathway clock alerts: the episodes whose day-38 or day-62 clock needs an alert not yet sent, and the
record of each alert sent (once per episode, alert and party). What a breach is: pathway_breaches.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from uuid import UUID

import asyncpg

from service.store.cwt import CwtDates
from service.store.pathway_breaches import STOPPED_STATES, breach_columns


@dataclass(frozen=True)
class ClockedEpisode:
    id: UUID
    referrer_ods: str
    centre_ods: str
    pathway_start: date
    opened_at: datetime
    treated_at: datetime | None
    referral_header_id: str
    alerted: frozenset[str]  # the clock alerts already sent for this episode
    cwt: CwtDates = field(default_factory=CwtDates)  # the recorded CWT dates (IPT received, treatment, adjustments)


async def lease_due_clocks(
    conn: asyncpg.Connection, today: date, *, warning_days: int, limit: int
) -> list[ClockedEpisode]:
    """Open episodes with a pathway start whose day-38 breach, day-62 warning or day-62 breach has not been
    alerted yet, locked for this transaction (other sweeps skip them). What a breach is, and the targets, are
    pathway_breaches.py's; `today` is the Europe/London date. A treatment date after day 62 is a day-62 breach
    too."""
    records = await conn.fetch(
        f"""
        WITH clocked AS (
            SELECT e.id, e.referrer_ods, e.centre_ods, e.pathway_start, e.opened_at, e.ipt_received_date,
                   e.treatment_date, e.adjustment_days_referring, e.adjustment_days_treating,
                   {breach_columns("e", "$1::date")},
                   (SELECT min(l.since) FROM responsibility_ledger l
                     WHERE l.episode_id = e.id AND l.seq > 0 AND l.ods = e.centre_ods) AS treated_at,
                   (SELECT m.message_header_id FROM episode_messages em JOIN messages m ON m.id = em.message_id
                     WHERE em.episode_id = e.id AND em.kind = 'referral' ORDER BY em.at LIMIT 1) AS referral_header_id,
                   ARRAY(SELECT DISTINCT a.alert FROM pathway_clock_alerts a WHERE a.episode_id = e.id) AS alerted
            FROM episodes e
            WHERE e.pathway_start IS NOT NULL AND e.state NOT IN ({", ".join(f"'{s}'" for s in STOPPED_STATES)})
        )
        SELECT c.* FROM clocked c JOIN episodes e ON e.id = c.id
        WHERE (NOT 'day-38-breached' = ANY(c.alerted) AND c.day_38_breached)
           OR (c.treated_on IS NULL AND NOT 'day-62-approaching' = ANY(c.alerted)
               AND $1::date BETWEEN c.treatment_target - $2::integer AND c.treatment_target)
           OR (NOT 'day-62-breached' = ANY(c.alerted) AND c.day_62_breached
               AND (c.treated_on IS NULL OR c.treatment_date IS NOT NULL))
        ORDER BY c.pathway_start, c.id
        LIMIT $3
        FOR UPDATE OF e SKIP LOCKED
        """,  # noqa: S608 - the breach columns are constant SQL
        today,
        warning_days,
        limit,
    )
    return [
        ClockedEpisode(
            r["id"],
            r["referrer_ods"],
            r["centre_ods"],
            r["pathway_start"],
            r["opened_at"],
            r["treated_at"],
            r["referral_header_id"] or "",
            frozenset(r["alerted"]),
            CwtDates(
                clock_start=r["pathway_start"],
                ipt_received_date=r["ipt_received_date"],
                treatment_date=r["treatment_date"],
                adjustment_days_referring=r["adjustment_days_referring"],
                adjustment_days_treating=r["adjustment_days_treating"],
            ),
        )
        for r in records
    ]


async def record_clock_alert(
    conn: asyncpg.Connection, episode_id: UUID, *, alert: str, recipient_ods: str, alert_message: UUID, at: datetime
) -> bool:
    """Claim the alert for this party; False if it was already sent (e.g. by another hub process just now)."""
    claimed = await conn.fetchval(
        "INSERT INTO pathway_clock_alerts (episode_id, alert, recipient_ods, alert_message, alerted_at)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
        episode_id,
        alert,
        recipient_ods,
        alert_message,
        at,
    )
    return bool(claimed)
