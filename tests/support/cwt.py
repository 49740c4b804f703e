"""Cancer pathways for the waiting-times report and extract tests: rows as the store returns them, and the CWT
dates written onto real episodes (until the messages carry them, the columns of migration 0013 are set here)."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from service.store.cwt_reads import CwtPathwayRow

START = date(2026, 9, 1)


def day(n: int | None) -> date | None:
    return None if n is None else START + timedelta(days=n)


def pathway_row(
    referring: str,
    treating: str,
    ipt_day: int | None,
    treat_day: int | None,
    *,
    adj_ref: int = 0,
    adj_trt: int = 0,
    **more: Any,
) -> CwtPathwayRow:
    """A pathway starting on START with its IPT and treatment on the given days (None: not yet)."""
    values: dict[str, Any] = {
        "episode_id": uuid.uuid4(),
        "referral_identifier": f"urn:uuid:{uuid.uuid4()}",
        "nhs_number_hmac": "ab" * 32,
        "referring": referring,
        "treating": treating,
        "clock_start": START,
        "ipt_received_date": day(ipt_day),
        "decision_to_refer_date": None,
        "decision_to_treat_date": None,
        "treatment_date": day(treat_day),
        "treatment_opcs4": None,
        "faster_diagnosis_date": None,
        "adjustment_days_referring": adj_ref,
        "adjustment_days_treating": adj_trt,
        "key_worker_name": None,
        "key_worker_identifier": None,
        "key_worker_ods": None,
        "referral_message_id": None,
        "first_smdt_outcome_date": None,
        "first_at_centre_date": None,
    }
    values.update(more)
    return CwtPathwayRow(**values)


async def set_cwt_dates(dsn: str, episode_id: UUID, **columns: Any) -> None:
    """Write CWT columns (migration 0013 names, plus `pathway_start`) onto an episode."""
    allowed = {
        "pathway_start",
        "ipt_received_date",
        "decision_to_refer_date",
        "decision_to_treat_date",
        "treatment_date",
        "treatment_opcs4",
        "faster_diagnosis_date",
        "adjustment_days_referring",
        "adjustment_days_treating",
    }
    assert set(columns) <= allowed, set(columns) - allowed
    names = list(columns)
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, 2))
    conn = await asyncpg.connect(dsn)
    try:
        sql = f"UPDATE episodes SET {assignments} WHERE id = $1"  # noqa: S608 - column names from `allowed` only
        await conn.execute(sql, episode_id, *columns.values())
    finally:
        await conn.close()


async def episode_ids(dsn: str) -> list[UUID]:
    """Every episode's id, oldest first."""
    conn = await asyncpg.connect(dsn)
    try:
        return [r["id"] for r in await conn.fetch("SELECT id FROM episodes ORDER BY opened_at, id")]
    finally:
        await conn.close()
