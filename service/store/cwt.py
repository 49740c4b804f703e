"""An episode's Cancer Waiting Times dates (migration 0013): every SQL statement that reads or writes them, but for
the opening of an episode (`episodes.lock_or_open_episode`), which writes its first ones with it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

import asyncpg


@dataclass(frozen=True)
class CwtDates:
    """The dates breach allocation needs, as recorded on the episode; `clock_start` is its `pathway_start`."""

    clock_start: date | None = None
    ipt_received_date: date | None = None
    ipt_received_message_id: UUID | None = None
    decision_to_refer_date: date | None = None
    decision_to_treat_date: date | None = None
    treatment_date: date | None = None
    treatment_opcs4: str | None = None
    faster_diagnosis_date: date | None = None
    adjustment_days_referring: int = 0
    adjustment_days_treating: int = 0

    def recorded(self) -> tuple[Any, ...]:
        """The values the episode's CWT columns hold (every field but `clock_start`, which is `pathway_start`),
        in the order `write_cwt_dates` and an episode's opening write them."""
        return (
            self.ipt_received_date,
            self.ipt_received_message_id,
            self.decision_to_refer_date,
            self.decision_to_treat_date,
            self.treatment_date,
            self.treatment_opcs4,
            self.faster_diagnosis_date,
            self.adjustment_days_referring,
            self.adjustment_days_treating,
        )


_COLUMNS = (
    "pathway_start, ipt_received_date, ipt_received_message_id, decision_to_refer_date, decision_to_treat_date,"
    " treatment_date, treatment_opcs4, faster_diagnosis_date, adjustment_days_referring, adjustment_days_treating"
)


def _dates(record: asyncpg.Record) -> CwtDates:
    return CwtDates(*(record[i] for i in range(10)))


async def read_cwt_dates(conn: asyncpg.Connection, episode_id: UUID) -> CwtDates:
    record = await conn.fetchrow(f"SELECT {_COLUMNS} FROM episodes WHERE id = $1", episode_id)  # noqa: S608
    return CwtDates() if record is None else _dates(record)


async def cwt_dates_of(conn: asyncpg.Connection, episode_ids: list[UUID]) -> dict[UUID, CwtDates]:
    """The CWT dates of several episodes at once (for lists)."""
    records = await conn.fetch(
        f"SELECT id, {_COLUMNS} FROM episodes WHERE id = ANY($1::uuid[])",  # noqa: S608 - constant columns
        episode_ids,
    )
    return {r["id"]: CwtDates(*(r[i] for i in range(1, 11))) for r in records}


async def write_cwt_dates(conn: asyncpg.Connection, episode_id: UUID, dates: CwtDates) -> None:
    """Record the episode's CWT dates (the caller has applied the first-recorded-stands rule)."""
    await conn.execute(
        "UPDATE episodes SET ipt_received_date = $2, ipt_received_message_id = $3, decision_to_refer_date = $4,"
        " decision_to_treat_date = $5, treatment_date = $6, treatment_opcs4 = $7, faster_diagnosis_date = $8,"
        " adjustment_days_referring = $9, adjustment_days_treating = $10 WHERE id = $1",
        episode_id,
        *dates.recorded(),
    )
