"""Push circuit breakers as the relay last recorded them, one row per recipient, so that every hub process (and
the deliveries page) can see a state that otherwise lives in one relay's memory."""

from __future__ import annotations

from datetime import datetime

import asyncpg


async def save_circuit(
    conn: asyncpg.Connection, recipient_ods: str, *, failures: int, open_until: datetime | None, now: datetime
) -> None:
    await conn.execute(
        """
        INSERT INTO push_circuits (recipient_ods, failures, open_until, updated_at) VALUES ($1, $2, $3, $4)
        ON CONFLICT (recipient_ods) DO UPDATE
        SET failures = excluded.failures, open_until = excluded.open_until, updated_at = excluded.updated_at
        """,
        recipient_ods,
        failures,
        open_until,
        now,
    )
