"""Reading cancer pathways for the waiting-times reports: the dates on each episode (migration 0013) with the
few message dates the extracts need, for the governance report (`/governance/cwt`) and the CWT and COSD extracts.

A cancer pathway is an episode with a clock start (`pathway_start`). Dates from messages are Europe/London
calendar dates, as the trusts record them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from uuid import UUID

import asyncpg

_PATHWAYS_SQL = """
SELECT e.id, e.referral_identifier, e.nhs_number_hmac, e.referrer_ods, e.centre_ods, e.pathway_start,
       e.ipt_received_date, e.decision_to_refer_date, e.decision_to_treat_date, e.treatment_date, e.treatment_opcs4,
       e.faster_diagnosis_date, e.adjustment_days_referring, e.adjustment_days_treating,
       e.key_worker_name, e.key_worker_identifier, e.key_worker_ods,
       coalesce(e.ipt_received_message_id, (
           SELECT r.message_id FROM episode_messages r
           WHERE r.episode_id = e.id AND r.kind = 'referral' ORDER BY r.at DESC, r.message_id LIMIT 1
       )) AS referral_message_id,
       (SELECT (min(o.at) AT TIME ZONE 'Europe/London')::date FROM episode_messages o
        WHERE o.episode_id = e.id
          AND o.kind IN ('outcome-accepted', 'outcome-declined', 'outcome-more-information-needed')
       ) AS first_smdt_outcome_at,
       (SELECT (min(t.at) AT TIME ZONE 'Europe/London')::date FROM episode_messages t
        WHERE t.episode_id = e.id AND t.kind = 'transfer-accepted' AND t.changed AND t.sender_ods = e.centre_ods
       ) AS first_at_centre_at
FROM episodes e
WHERE e.pathway_start IS NOT NULL AND {period}
ORDER BY e.treatment_date NULLS LAST, e.pathway_start, e.id
"""
_TREATED_IN_PERIOD = "e.treatment_date BETWEEN $1 AND $2"
_ANY_DATE_IN_PERIOD = (
    "(e.pathway_start BETWEEN $1 AND $2 OR e.ipt_received_date BETWEEN $1 AND $2 OR e.treatment_date BETWEEN $1 AND $2)"
)


@dataclass(frozen=True)
class CwtPathwayRow:
    """One cancer pathway's waiting-time facts. `referral_message_id` is the referral that completed the IPT data
    set (else the latest referral); the two message dates are None until such a message arrived."""

    episode_id: UUID
    referral_identifier: str
    nhs_number_hmac: str
    referring: str
    treating: str
    clock_start: date
    ipt_received_date: date | None
    decision_to_refer_date: date | None
    decision_to_treat_date: date | None
    treatment_date: date | None
    treatment_opcs4: str | None
    faster_diagnosis_date: date | None
    adjustment_days_referring: int
    adjustment_days_treating: int
    key_worker_name: str | None
    key_worker_identifier: str | None
    key_worker_ods: str | None
    referral_message_id: UUID | None
    first_smdt_outcome_date: date | None
    first_at_centre_date: date | None


async def treated_pathways(conn: asyncpg.Connection, start: date, end: date) -> list[CwtPathwayRow]:
    """Every cancer pathway whose first definitive treatment date falls in [start, end], by treatment date."""
    return await _pathways(conn, _TREATED_IN_PERIOD, start, end)


async def pathways_in_period(conn: asyncpg.Connection, start: date, end: date) -> list[CwtPathwayRow]:
    """Every cancer pathway with its clock start, IPT received date or treatment date in [start, end], once each:
    treated ones first by treatment date, then the rest by clock start."""
    return await _pathways(conn, _ANY_DATE_IN_PERIOD, start, end)


async def _pathways(conn: asyncpg.Connection, period: str, start: date, end: date) -> list[CwtPathwayRow]:
    records = await conn.fetch(_PATHWAYS_SQL.format(period=period), start, end)
    return [
        CwtPathwayRow(
            episode_id=r["id"],
            referral_identifier=r["referral_identifier"],
            nhs_number_hmac=r["nhs_number_hmac"],
            referring=r["referrer_ods"],
            treating=r["centre_ods"],
            clock_start=r["pathway_start"],
            ipt_received_date=r["ipt_received_date"],
            decision_to_refer_date=r["decision_to_refer_date"],
            decision_to_treat_date=r["decision_to_treat_date"],
            treatment_date=r["treatment_date"],
            treatment_opcs4=r["treatment_opcs4"],
            faster_diagnosis_date=r["faster_diagnosis_date"],
            adjustment_days_referring=r["adjustment_days_referring"],
            adjustment_days_treating=r["adjustment_days_treating"],
            key_worker_name=r["key_worker_name"],
            key_worker_identifier=r["key_worker_identifier"],
            key_worker_ods=r["key_worker_ods"],
            referral_message_id=r["referral_message_id"],
            first_smdt_outcome_date=r["first_smdt_outcome_at"],
            first_at_centre_date=r["first_at_centre_at"],
        )
        for r in records
    ]
