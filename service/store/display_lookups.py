"""Look-ups that let the staff pages show words and links instead of ids: staff members' names by the subject
their sign-ins recorded, and the episode each message belongs to."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

import asyncpg


async def staff_names(conn: asyncpg.Connection, subjects: Iterable[str]) -> dict[str, str]:
    """The display name each subject last signed in with (subjects never signed in are absent)."""
    records = await conn.fetch(
        "SELECT DISTINCT ON (subject) subject, display_name FROM ui_sessions WHERE subject = ANY($1::text[])"
        " ORDER BY subject, created_at DESC",
        list(set(subjects)),
    )
    return {r["subject"]: r["display_name"] for r in records}


async def episodes_of_messages(conn: asyncpg.Connection, message_ids: Iterable[UUID | None]) -> dict[UUID, UUID]:
    """The episode of each message that belongs to one: as its message, or as the safety-net alert it caused."""
    wanted = list({m for m in message_ids if m is not None})
    records = await conn.fetch(
        "SELECT message_id, episode_id FROM episode_messages WHERE message_id = ANY($1::uuid[])"
        " UNION ALL SELECT alert_message, episode_id FROM deadlines WHERE alert_message = ANY($1::uuid[])",
        wanted,
    )
    return {r["message_id"]: r["episode_id"] for r in records}
