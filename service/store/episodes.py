"""Episodes, their message timeline, the responsibility ledger and deadlines: every SQL statement for them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from service.store.cwt import CwtDates


@dataclass(frozen=True)
class EpisodeRow:
    id: UUID
    state: str
    snapshot: dict[str, Any]
    referrer_ods: str
    centre_ods: str
    pathway_start: date | None
    opened_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class LedgerEntry:
    seq: int
    ods: str
    clinician_name: str
    clinician_identifier: str | None
    since: datetime
    caused_by: UUID
    accepted_by_name: str | None


def episode_row(record: asyncpg.Record) -> EpisodeRow:
    return EpisodeRow(
        record["id"],
        record["state"],
        json.loads(record["snapshot"]),
        record["referrer_ods"],
        record["centre_ods"],
        record["pathway_start"],
        record["opened_at"],
        record["updated_at"],
    )


_COLUMNS = "id, state, snapshot, referrer_ods, centre_ods, pathway_start, opened_at, updated_at"


async def lock_episode(conn: asyncpg.Connection, nhs_number_hmac: str, referral_identifier: str) -> EpisodeRow | None:
    """The episode, locked for this transaction (concurrent messages for one patient queue here)."""
    record = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM episodes WHERE nhs_number_hmac = $1 AND referral_identifier = $2 FOR UPDATE",  # noqa: S608
        nhs_number_hmac,
        referral_identifier,
    )
    return None if record is None else episode_row(record)


@dataclass(frozen=True)
class NewEpisode:
    """An episode to open when a message finds none (a referral's): its columns besides the patient and referral."""

    episode_id: UUID
    referrer_ods: str
    centre_ods: str
    state: str
    snapshot: dict[str, Any]
    pathway_start: date | None
    at: datetime
    birth_date_hmac: str | None = None
    key_worker: KeyWorker | None = None
    timeline: Timeline | None = None
    """The opening message's timeline, written in the same statement when it opens the episode (at most one new
    holder: the ledger's chain trigger must see each of several)."""
    cwt: CwtDates | None = None
    """The episode's Cancer Waiting Times dates from the start (its `clock_start` is `pathway_start`'s; None: none
    recorded yet), written in the same statement."""


@dataclass(frozen=True)
class FoundEpisode:
    """What `lock_or_open_episode` found: the episode, locked (None if there is none and none was opened),
    whether this statement opened it, and, when there is none, whether an episode between these parties has
    this referral identifier but another patient."""

    row: EpisodeRow | None
    opened: bool
    of_another_patient: bool


@dataclass(frozen=True)
class KeyWorker:
    """The patient's key worker as the latest referral names them (migration 0005): written here, read by
    `episode_reads.key_worker`."""

    name: str
    identifier: str | None
    ods: str


def _key_worker_columns(key_worker: KeyWorker | None) -> tuple[str | None, str | None, str | None]:
    """key_worker_name, key_worker_identifier and key_worker_ods."""
    if key_worker is None:
        return None, None, None
    return key_worker.name, key_worker.identifier, key_worker.ods


async def claim_birth_date(conn: asyncpg.Connection, episode_id: UUID, birth_date_hmac: str) -> str | None:
    """Remember `birth_date_hmac` as the episode's patient's date of birth unless one is known already; returns
    the one the episode now holds (one round trip: compare it with what the message gave)."""
    value = await conn.fetchval(
        "UPDATE episodes SET birth_date_hmac = coalesce(birth_date_hmac, $2) WHERE id = $1 RETURNING birth_date_hmac",
        episode_id,
        birth_date_hmac,
    )
    return None if value is None else str(value)


async def update_episode(
    conn: asyncpg.Connection,
    episode_id: UUID,
    *,
    state: str,
    snapshot: dict[str, Any],
    pathway_start: date | None,
    at: datetime,
    key_worker: KeyWorker | None = None,
) -> None:
    """The episode's new state; and its key worker, when the message names one (else the one it had stays)."""
    await conn.execute(
        "UPDATE episodes SET state = $2, snapshot = $3, pathway_start = coalesce(pathway_start, $4), updated_at = $5,"
        " key_worker_name = CASE WHEN $6 THEN $7 ELSE key_worker_name END,"
        " key_worker_identifier = CASE WHEN $6 THEN $8 ELSE key_worker_identifier END,"
        " key_worker_ods = CASE WHEN $6 THEN $9 ELSE key_worker_ods END"
        " WHERE id = $1",
        episode_id,
        state,
        json.dumps(snapshot),
        pathway_start,
        at,
        key_worker is not None,
        *_key_worker_columns(key_worker),
    )


async def add_message(
    conn: asyncpg.Connection,
    *,
    episode_id: UUID,
    message_id: UUID,
    kind: str,
    sender_ods: str,
    recipient_ods: str,
    at: datetime,
    changed: bool,
) -> None:
    await conn.execute(
        "INSERT INTO episode_messages (episode_id, message_id, kind, sender_ods, recipient_ods, at, changed)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        episode_id,
        message_id,
        kind,
        sender_ods,
        recipient_ods,
        at,
        changed,
    )


async def append_ledger(conn: asyncpg.Connection, episode_id: UUID, entry: LedgerEntry) -> None:
    await conn.execute(
        "INSERT INTO responsibility_ledger (episode_id, seq, ods, clinician_name, clinician_identifier, since,"
        " caused_by, accepted_by_name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        episode_id,
        entry.seq,
        entry.ods,
        entry.clinician_name,
        entry.clinician_identifier,
        entry.since,
        entry.caused_by,
        entry.accepted_by_name,
    )


@dataclass(frozen=True)
class NewDeadline:
    """An answer one trust owes another about a message, due by `due_at`."""

    kind: str
    message_id: UUID
    owed_by: str
    waiting: str
    due_at: datetime


@dataclass(frozen=True)
class NewTimelineEntry:
    """A message on its episode's timeline (`changed`: whether it moved the episode's state)."""

    episode_id: UUID
    message_id: UUID
    kind: str
    sender_ods: str
    recipient_ods: str
    at: datetime
    changed: bool


@dataclass(frozen=True)
class Timeline:
    """What a message adds to its episode (`record_timeline`): its place on the timeline, the new holders of
    clinical responsibility, and the clocks it starts."""

    entry: NewTimelineEntry
    ledger: Sequence[LedgerEntry] = ()
    deadlines: Sequence[NewDeadline] = ()


def _timeline_ctes(first: int, episodes: str) -> str:
    """The CTEs that write a `Timeline` for each episode id `episodes` gives (a FROM item naming its id column `id`),
    its values as parameters from ${first} on, in `_timeline_arguments` order. No entry (a NULL message id):
    nothing is written."""
    n = [f"${first + i}" for i in range(18)]
    return f"""
        timeline AS (
            INSERT INTO episode_messages (episode_id, message_id, kind, sender_ods, recipient_ods, at, changed)
            SELECT e.id, {n[0]}::uuid, {n[1]}::text, {n[2]}::text, {n[3]}::text, {n[4]}::timestamptz,
                   {n[5]}::boolean
            FROM {episodes} AS e WHERE {n[0]}::uuid IS NOT NULL
            ON CONFLICT DO NOTHING
        ), ledger AS (
            INSERT INTO responsibility_ledger (episode_id, seq, ods, clinician_name, clinician_identifier, since,
                                               caused_by, accepted_by_name)
            SELECT e.id, l.* FROM {episodes} AS e, unnest({n[6]}::integer[], {n[7]}::text[], {n[8]}::text[],
                                                    {n[9]}::text[], {n[10]}::timestamptz[], {n[11]}::uuid[],
                                                    {n[12]}::text[]) AS l
        ), deadline AS (
            INSERT INTO deadlines (episode_id, kind, message_id, owed_by, waiting, due_at)
            SELECT e.id, d.* FROM {episodes} AS e, unnest({n[13]}::text[], {n[14]}::uuid[], {n[15]}::text[],
                                                    {n[16]}::text[], {n[17]}::timestamptz[]) AS d
            ON CONFLICT ON CONSTRAINT deadlines_episode_kind_message_key DO NOTHING
        )"""  # noqa: S608 - parameter numbers and a constant FROM item only


def _timeline_arguments(timeline: Timeline | None) -> list[Any]:
    """The 18 parameters of `_timeline_ctes` (all NULL or empty for no timeline)."""
    if timeline is None:
        return [None] * 6 + [[]] * 12
    entry, ledger, deadlines = timeline.entry, timeline.ledger, timeline.deadlines
    return [
        entry.message_id,
        entry.kind,
        entry.sender_ods,
        entry.recipient_ods,
        entry.at,
        entry.changed,
        [h.seq for h in ledger],
        [h.ods for h in ledger],
        [h.clinician_name for h in ledger],
        [h.clinician_identifier for h in ledger],
        [h.since for h in ledger],
        [h.caused_by for h in ledger],
        [h.accepted_by_name for h in ledger],
        [d.kind for d in deadlines],
        [d.message_id for d in deadlines],
        [d.owed_by for d in deadlines],
        [d.waiting for d in deadlines],
        [d.due_at for d in deadlines],
    ]


_RECORD_TIMELINE = f"WITH {_timeline_ctes(2, '(SELECT $1::uuid AS id)')} SELECT 1"


async def record_timeline(
    conn: asyncpg.Connection,
    entry: NewTimelineEntry,
    *,
    ledger: Sequence[LedgerEntry],
    deadlines: Sequence[NewDeadline],
) -> None:
    """What a message adds to its episode, in one statement: its place on the timeline (`add_message`), the new
    holders of clinical responsibility, and the clocks it starts (one already started for that kind and message
    stays). More than one new holder are appended one statement each, so the ledger's chain trigger sees each."""
    if len(ledger) > 1:
        for holder in ledger:
            await append_ledger(conn, entry.episode_id, holder)
        ledger = ()
    await conn.execute(_RECORD_TIMELINE, entry.episode_id, *_timeline_arguments(Timeline(entry, ledger, deadlines)))


_LOCK_OR_OPEN = f"""
    WITH locked AS (
        SELECT {_COLUMNS} FROM episodes WHERE nhs_number_hmac = $1 AND referral_identifier = $2 FOR UPDATE
    ), other AS (
        SELECT NOT EXISTS (SELECT 1 FROM locked) AND EXISTS (
            SELECT 1 FROM episodes WHERE referral_identifier = $2 AND nhs_number_hmac <> $1
            AND (referrer_ods = ANY($3::text[]) OR centre_ods = ANY($3::text[]))
        ) AS of_another_patient
    ), opened AS (
        INSERT INTO episodes (id, nhs_number_hmac, referral_identifier, referrer_ods, centre_ods, state, snapshot,
                              pathway_start, opened_at, updated_at, birth_date_hmac, key_worker_name,
                              key_worker_identifier, key_worker_ods, ipt_received_date, ipt_received_message_id,
                              decision_to_refer_date, decision_to_treat_date, treatment_date, treatment_opcs4,
                              faster_diagnosis_date, adjustment_days_referring, adjustment_days_treating)
        SELECT $4::uuid, $1, $2, $5::text, $6::text, $7::text, $8::jsonb, $9::date, $10::timestamptz,
               $10::timestamptz, $11::text, $12::text, $13::text, $14::text, $33::date, $34::uuid, $35::date,
               $36::date, $37::date, $38::text, $39::date, $40::integer, $41::integer
        WHERE $4::uuid IS NOT NULL AND NOT EXISTS (SELECT 1 FROM locked)
          AND NOT (SELECT of_another_patient FROM other)
        ON CONFLICT ON CONSTRAINT episodes_patient_referral_key DO NOTHING
        RETURNING {_COLUMNS}
    ), {_timeline_ctes(15, "opened")}
    SELECT found.*, (SELECT of_another_patient FROM other) AS of_another_patient
    FROM (SELECT 1) AS one LEFT JOIN (
        SELECT {_COLUMNS}, false AS opened FROM locked UNION ALL SELECT {_COLUMNS}, true AS opened FROM opened
    ) AS found ON true
"""  # noqa: S608 - _COLUMNS and the CTEs are constants


async def lock_or_open_episode(
    conn: asyncpg.Connection,
    nhs_number_hmac: str,
    referral_identifier: str,
    *,
    parties: tuple[str, str],
    new: NewEpisode | None = None,
) -> FoundEpisode:
    """`lock_episode` and, when there is no such episode, whether it would belong to another patient; and when
    there is none, none of another patient and `new` is given, `new` opened and locked: all in one round trip.
    An episode a concurrent transaction opened first gives row None, opened False (the caller locks it then)."""
    worker = _key_worker_columns(new.key_worker if new is not None else None)
    if new is not None and new.timeline is not None and len(new.timeline.ledger) > 1:
        raise ValueError("lock_or_open_episode: several new holders are appended one statement each")
    record = await conn.fetchrow(
        _LOCK_OR_OPEN,
        nhs_number_hmac,
        referral_identifier,
        list(parties),
        new.episode_id if new is not None else None,
        new.referrer_ods if new is not None else None,
        new.centre_ods if new is not None else None,
        new.state if new is not None else None,
        json.dumps(new.snapshot) if new is not None else None,
        new.pathway_start if new is not None else None,
        new.at if new is not None else None,
        new.birth_date_hmac if new is not None else None,
        *worker,
        *_timeline_arguments(new.timeline if new is not None else None),
        *_cwt_arguments(new.cwt if new is not None else None),
    )
    assert record is not None  # one row always, from the LEFT JOIN
    row = None if record["id"] is None else episode_row(record)
    return FoundEpisode(row, bool(record["opened"]), bool(record["of_another_patient"]))


_NO_CWT_ARGUMENTS = CwtDates().recorded()  # the columns' defaults


def _cwt_arguments(dates: CwtDates | None) -> tuple[Any, ...]:
    """The CWT columns an episode is opened with ($33-$41 of `_LOCK_OR_OPEN`): the columns' defaults for None."""
    return _NO_CWT_ARGUMENTS if dates is None else dates.recorded()


async def meet_deadlines(
    conn: asyncpg.Connection, *, episode_id: UUID, kind: str, at: datetime, message_id: UUID | None = None
) -> int:
    """Mark open deadlines of `kind` (for one message, or all of the episode's) as met; returns how many."""
    status: str = await conn.execute(
        "UPDATE deadlines SET met_at = $3 WHERE episode_id = $1 AND kind = $2 AND met_at IS NULL"
        " AND ($4::uuid IS NULL OR message_id = $4)",
        episode_id,
        kind,
        at,
        message_id,
    )
    return int(status.rsplit(" ", 1)[-1])


async def find_acknowledged(
    conn: asyncpg.Connection, *, sender_ods: str, recipient_ods: str, header_id: str
) -> tuple[UUID, UUID] | None:
    """(episode id, message id) of the message whose MessageHeader.id an acknowledgement answers."""
    record = await conn.fetchrow(
        """
        SELECT em.episode_id, m.id FROM messages m JOIN episode_messages em ON em.message_id = m.id
        WHERE m.sender_ods = $1 AND m.recipient_ods = $2 AND m.message_header_id = $3
        ORDER BY m.accepted_at DESC LIMIT 1
        """,
        sender_ods,
        recipient_ods,
        header_id,
    )
    return None if record is None else (record["episode_id"], record["id"])


async def mark_acknowledged(conn: asyncpg.Connection, episode_id: UUID, message_id: UUID, at: datetime) -> None:
    await conn.execute(
        "UPDATE episode_messages SET acknowledged_at = coalesce(acknowledged_at, $3)"
        " WHERE episode_id = $1 AND message_id = $2",
        episode_id,
        message_id,
        at,
    )


@dataclass(frozen=True)
class OverdueDeadline:
    id: int
    episode_id: UUID
    kind: str
    message_id: UUID
    owed_by: str
    waiting: str
    due_at: datetime
    awaited_header_id: str


async def lease_overdue(conn: asyncpg.Connection, now: datetime, *, limit: int) -> list[OverdueDeadline]:
    """Overdue deadlines nobody has alerted yet, locked for this transaction (other safety nets skip them).

    Each deadline's episode is key-share locked here too, and a deadline whose episode is locked (an acceptance
    applying a message to it, a clock sweep) is skipped until the next sweep: the sweep then never waits for an
    episode row while holding a deadline an acceptance waits for (an acceptance locks its episode, then meets
    its deadlines), which deadlocked with acceptances in flight."""
    records = await conn.fetch(
        """
        SELECT d.id, d.episode_id, d.kind, d.message_id, d.owed_by, d.waiting, d.due_at, m.message_header_id
        FROM deadlines d JOIN messages m ON m.id = d.message_id JOIN episodes e ON e.id = d.episode_id
        WHERE d.met_at IS NULL AND d.alerted_at IS NULL AND d.due_at <= $1
        ORDER BY d.due_at, d.id LIMIT $2
        FOR UPDATE OF d SKIP LOCKED
        FOR KEY SHARE OF e SKIP LOCKED
        """,
        now,
        limit,
    )
    return [
        OverdueDeadline(
            r["id"],
            r["episode_id"],
            r["kind"],
            r["message_id"],
            r["owed_by"],
            r["waiting"],
            r["due_at"],
            r["message_header_id"] or "",
        )
        for r in records
    ]


async def mark_alerted(conn: asyncpg.Connection, deadline_id: int, alert_message: UUID, at: datetime) -> None:
    await conn.execute(
        "UPDATE deadlines SET alerted_at = $2, alert_message = $3 WHERE id = $1", deadline_id, at, alert_message
    )
