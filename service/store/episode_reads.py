"""Reading episodes for the API and governance: lists, one episode's timeline, ledger and deadlines."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from service.store.episodes import EpisodeRow, KeyWorker, LedgerEntry, episode_row


@dataclass(frozen=True)
class TimelineEntry:
    message_id: UUID
    kind: str
    sender_ods: str
    recipient_ods: str
    at: datetime
    changed: bool
    acknowledged_at: datetime | None


@dataclass(frozen=True)
class Deadline:
    kind: str
    message_id: UUID
    owed_by: str
    waiting: str
    due_at: datetime
    met_at: datetime | None
    alerted_at: datetime | None


async def list_episodes(
    conn: asyncpg.Connection,
    *,
    nhs_number_hmac: str | None,
    trust: str | None,
    state: str | None,
    overdue_at: datetime | None,
    limit: int,
) -> list[EpisodeRow]:
    records = await conn.fetch(
        """
        SELECT id, state, snapshot, referrer_ods, centre_ods, pathway_start, opened_at, updated_at FROM episodes e
        WHERE ($1::text IS NULL OR nhs_number_hmac = $1)
          AND ($2::text IS NULL OR referrer_ods = $2 OR centre_ods = $2)
          AND ($3::text IS NULL OR state = $3)
          AND ($4::timestamptz IS NULL OR EXISTS (
                SELECT 1 FROM deadlines d WHERE d.episode_id = e.id AND d.met_at IS NULL AND d.due_at <= $4))
        ORDER BY opened_at DESC, id LIMIT $5
        """,
        nhs_number_hmac,
        trust,
        state,
        overdue_at,
        limit,
    )
    return [episode_row(r) for r in records]


async def get_episode(conn: asyncpg.Connection, episode_id: UUID) -> EpisodeRow | None:
    record = await conn.fetchrow(
        "SELECT id, state, snapshot, referrer_ods, centre_ods, pathway_start, opened_at, updated_at"
        " FROM episodes WHERE id = $1",
        episode_id,
    )
    return None if record is None else episode_row(record)


async def timeline(conn: asyncpg.Connection, episode_id: UUID) -> list[TimelineEntry]:
    records = await conn.fetch(
        "SELECT message_id, kind, sender_ods, recipient_ods, at, changed, acknowledged_at FROM episode_messages"
        " WHERE episode_id = $1 ORDER BY at, message_id",
        episode_id,
    )
    return [
        TimelineEntry(
            r["message_id"], r["kind"], r["sender_ods"], r["recipient_ods"], r["at"], r["changed"], r["acknowledged_at"]
        )
        for r in records
    ]


async def ledger(conn: asyncpg.Connection, episode_id: UUID) -> list[LedgerEntry]:
    records = await conn.fetch(
        "SELECT seq, ods, clinician_name, clinician_identifier, since, caused_by, accepted_by_name"
        " FROM responsibility_ledger WHERE episode_id = $1 ORDER BY seq",
        episode_id,
    )
    return [
        LedgerEntry(
            r["seq"],
            r["ods"],
            r["clinician_name"],
            r["clinician_identifier"],
            r["since"],
            r["caused_by"],
            r["accepted_by_name"],
        )
        for r in records
    ]


async def deadlines(conn: asyncpg.Connection, episode_ids: list[UUID]) -> dict[UUID, list[Deadline]]:
    records = await conn.fetch(
        "SELECT episode_id, kind, message_id, owed_by, waiting, due_at, met_at, alerted_at FROM deadlines"
        " WHERE episode_id = ANY($1::uuid[]) ORDER BY due_at",
        episode_ids,
    )
    found: dict[UUID, list[Deadline]] = {}
    for r in records:
        found.setdefault(r["episode_id"], []).append(
            Deadline(r["kind"], r["message_id"], r["owed_by"], r["waiting"], r["due_at"], r["met_at"], r["alerted_at"])
        )
    return found


async def count_overdue(conn: asyncpg.Connection, now: datetime) -> dict[str, int]:
    records = await conn.fetch(
        "SELECT kind, count(*) AS n FROM deadlines WHERE met_at IS NULL AND due_at <= $1 GROUP BY kind", now
    )
    return {r["kind"]: int(r["n"]) for r in records}


async def open_deadlines(conn: asyncpg.Connection, now: datetime) -> list[tuple[UUID, Deadline]]:
    records = await conn.fetch(
        "SELECT episode_id, kind, message_id, owed_by, waiting, due_at, met_at, alerted_at FROM deadlines"
        " WHERE met_at IS NULL AND due_at <= $1 ORDER BY due_at",
        now,
    )
    return [
        (
            r["episode_id"],
            Deadline(r["kind"], r["message_id"], r["owed_by"], r["waiting"], r["due_at"], r["met_at"], r["alerted_at"]),
        )
        for r in records
    ]


async def key_worker(conn: asyncpg.Connection, episode_id: UUID) -> KeyWorker | None:
    """The key worker the latest referral named, if any."""
    record = await conn.fetchrow(
        "SELECT key_worker_name, key_worker_identifier, key_worker_ods FROM episodes WHERE id = $1", episode_id
    )
    if record is None or record["key_worker_name"] is None:
        return None
    return KeyWorker(record["key_worker_name"], record["key_worker_identifier"], record["key_worker_ods"])
