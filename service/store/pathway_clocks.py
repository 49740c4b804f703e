"""Cancer pathway clock alerts: the episodes whose day-38 or day-62 clock needs an alert not yet sent, and the
record of each alert sent (once per episode, alert and party)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from uuid import UUID

import asyncpg

from service.store.cwt import CwtDates


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
    alerted yet, locked for this transaction (other sweeps skip them). As in clocks.py: the transfer is the IPT
    received date, else the referral's arrival (its UTC date); treatment is the recorded treatment date, else the
    first acceptance of a transfer of care to the centre; the targets move by the adjustment days. A treatment date
    after day 62 is a day-62 breach too."""
    records = await conn.fetch(
        """
        WITH clocked AS (
            SELECT e.id, e.referrer_ods, e.centre_ods, e.pathway_start, e.opened_at, e.ipt_received_date,
                   e.treatment_date, e.adjustment_days_referring, e.adjustment_days_treating,
                   e.pathway_start + 38 + e.adjustment_days_referring AS transfer_target,
                   e.pathway_start + 62 + e.adjustment_days_referring + e.adjustment_days_treating AS treatment_target,
                   (SELECT min(l.since) FROM responsibility_ledger l
                     WHERE l.episode_id = e.id AND l.seq > 0 AND l.ods = e.centre_ods) AS treated_at,
                   (SELECT m.message_header_id FROM episode_messages em JOIN messages m ON m.id = em.message_id
                     WHERE em.episode_id = e.id AND em.kind = 'referral' ORDER BY em.at LIMIT 1) AS referral_header_id,
                   ARRAY(SELECT DISTINCT a.alert FROM pathway_clock_alerts a WHERE a.episode_id = e.id) AS alerted
            FROM episodes e
            WHERE e.pathway_start IS NOT NULL AND e.state NOT IN ('declined-closed', 'withdrawn')
        )
        SELECT c.* FROM clocked c JOIN episodes e ON e.id = c.id
        WHERE (NOT 'day-38-breached' = ANY(c.alerted)
               AND coalesce(c.ipt_received_date, (c.opened_at AT TIME ZONE 'UTC')::date) > c.transfer_target)
           OR (c.treated_at IS NULL AND c.treatment_date IS NULL AND NOT 'day-62-approaching' = ANY(c.alerted)
               AND $1::date BETWEEN c.treatment_target - $2::integer AND c.treatment_target)
           OR (NOT 'day-62-breached' = ANY(c.alerted) AND (
               (c.treated_at IS NULL AND c.treatment_date IS NULL AND $1::date > c.treatment_target)
               OR c.treatment_date > c.treatment_target))
        ORDER BY c.pathway_start, c.id
        LIMIT $3
        FOR UPDATE OF e SKIP LOCKED
        """,
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
