"""Two parties responsible (hazard log HAZ-05), in the database: the responsibility ledger of an episode is one
chain 0, 1, 2, … so its current holder is always exactly one entry, whatever writes to it."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from service.store import episodes as store
from tests.support.hub import RunningHub
from tests.support.messages import pathway


async def send(hub: RunningHub, ods: str, bundle: dict[str, Any]) -> None:
    client = hub.trust(ods)
    result = await client.send(client.sign(bundle))
    assert result.accepted, result.body


async def test_ledger_chain_refuses_a_second_current_holder_or_a_gap(hub: RunningHub) -> None:
    story = pathway(611)
    await send(hub, "RM1", story.referral())
    await send(hub, "RGT", story.outcome("accepted"))
    await send(hub, "RM1", story.transfer_to_centre())
    await send(hub, "RGT", story.centre_answers())
    conn = await asyncpg.connect(hub.dsn)
    try:
        ledger = await conn.fetch("SELECT * FROM responsibility_ledger ORDER BY seq")
        assert [(r["seq"], r["ods"]) for r in ledger] == [(0, "RM1"), (1, "RGT")]
        current = ledger[-1]

        def entry(seq: int) -> store.LedgerEntry:
            return store.LedgerEntry(
                seq, "RM1", "Sam Referrer", "7000001", current["since"], ledger[0]["caused_by"], None
            )

        for gap in (0, 1, 3, 7):  # a fork (a second entry 0 or 1: two holders at once) or a gap
            with pytest.raises((asyncpg.CheckViolationError, asyncpg.UniqueViolationError)):
                await store.append_ledger(conn, current["episode_id"], entry(gap))
        with pytest.raises(asyncpg.CheckViolationError, match="one holder at a time"):
            await store.append_ledger(conn, current["episode_id"], entry(5))
        assert len(await conn.fetch("SELECT 1 FROM responsibility_ledger")) == 2, "nothing was added"
        await store.append_ledger(conn, current["episode_id"], entry(2))  # the next link is what the tracker writes
        assert len(await conn.fetch("SELECT 1 FROM responsibility_ledger")) == 3
    finally:
        await conn.close()
