"""Paths of the ui-pages pages that need ids from a demo hub's database (the payload page of a message)."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.ui.demo_hub import DemoHub


async def _first_referral(dsn: str) -> tuple[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT episode_id, message_id FROM episode_messages WHERE kind = 'referral' ORDER BY at LIMIT 1"
        )
    finally:
        await conn.close()
    assert row is not None, "the demo hub has no referral"
    return str(row["episode_id"]), str(row["message_id"])


def first_referral(hub: DemoHub) -> tuple[str, str]:
    """The episode id and message id of the demo's first referral."""
    return asyncio.run(_first_referral(hub.dsn))


def payload_path(hub: DemoHub) -> str:
    episode_id, message_id = first_referral(hub)
    return f"/ui/episodes/{episode_id}/messages/{message_id}"
