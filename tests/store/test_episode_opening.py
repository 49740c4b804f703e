"""`lock_or_open_episode`: finding, locking and opening an episode in one round trip (issue 28 item 5) keeps the
rules of the two statements it replaced: an episode found is locked and not opened again; a referral for another
patient between the same parties opens nothing; a message that cannot open an episode opens nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg

from service.store import episodes as store

AT = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
PATIENT, OTHER = "a" * 64, "b" * 64
PARTIES = ("RM1", "RGT")


def new_episode() -> store.NewEpisode:
    return store.NewEpisode(
        episode_id=uuid.uuid4(),
        referrer_ods="RM1",
        centre_ods="RGT",
        state="referred",
        snapshot={"state": "referred"},
        pathway_start=None,
        at=AT,
        key_worker=store.KeyWorker("Dr Alex Example", "C1234567", "RGT"),
    )


async def count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM episodes"))


async def test_a_referral_opens_its_episode_once_and_the_next_message_finds_it_locked(database: str) -> None:
    conn = await asyncpg.connect(database)
    try:
        first = new_episode()
        async with conn.transaction():
            opened = await store.lock_or_open_episode(conn, PATIENT, "REF-1", parties=PARTIES, new=first)
        assert opened.opened and not opened.of_another_patient
        assert opened.row is not None and opened.row.id == first.episode_id and opened.row.state == "referred"
        async with conn.transaction():
            again = await store.lock_or_open_episode(conn, PATIENT, "REF-1", parties=PARTIES, new=new_episode())
            assert again.row is not None and again.row.id == first.episode_id and not again.opened
            held = await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' AND pid = pg_backend_pid()"
            )
            assert held == 1  # FOR UPDATE took a row lock: this transaction has an id
        worker = await conn.fetchrow("SELECT key_worker_name, key_worker_ods FROM episodes")
        assert tuple(worker) == ("Dr Alex Example", "RGT")
        assert await count(conn) == 1
    finally:
        await conn.close()


async def test_a_referral_identifier_of_another_patient_opens_nothing(database: str) -> None:
    conn = await asyncpg.connect(database)
    try:
        await store.lock_or_open_episode(conn, PATIENT, "REF-1", parties=PARTIES, new=new_episode())
        found = await store.lock_or_open_episode(conn, OTHER, "REF-1", parties=PARTIES, new=new_episode())
        assert found.row is None and found.of_another_patient and not found.opened
        elsewhere = await store.lock_or_open_episode(conn, OTHER, "REF-1", parties=("RX1", "RX2"), new=new_episode())
        assert elsewhere.opened and not elsewhere.of_another_patient  # other parties: another referral
        assert await count(conn) == 2
    finally:
        await conn.close()


async def test_a_message_that_cannot_open_an_episode_opens_nothing(database: str) -> None:
    conn = await asyncpg.connect(database)
    try:
        found = await store.lock_or_open_episode(conn, PATIENT, "REF-1", parties=PARTIES, new=None)
        assert found == store.FoundEpisode(None, opened=False, of_another_patient=False)
        assert await count(conn) == 0
    finally:
        await conn.close()


async def test_the_opening_message_is_on_the_timeline_with_its_holder_and_clocks_only_when_it_opens(
    database: str,
) -> None:
    conn = await asyncpg.connect(database)
    try:
        message_id = uuid.uuid4()
        await conn.execute(
            "ALTER TABLE episode_messages DROP CONSTRAINT episode_messages_message_id_fkey;"
            "ALTER TABLE deadlines DROP CONSTRAINT deadlines_message_id_fkey;"
            "ALTER TABLE responsibility_ledger DROP CONSTRAINT responsibility_ledger_caused_by_fkey"
        )  # no message row: this test is about the episode's own tables

        def opening() -> store.NewEpisode:
            plain = new_episode()
            entry = store.NewTimelineEntry(plain.episode_id, message_id, "referral", "RM1", "RGT", AT, True)
            holder = store.LedgerEntry(0, "RM1", "Dr Alex Example", "C1234567", AT, message_id, None)
            clock = store.NewDeadline("acknowledgement", message_id, "RGT", "RM1", AT)
            return store.NewEpisode(
                **{**plain.__dict__, "timeline": store.Timeline(entry, [holder], [clock])},
            )

        first = opening()
        async with conn.transaction():
            found = await store.lock_or_open_episode(conn, PATIENT, "REF-1", parties=PARTIES, new=first)
        assert found.opened
        written = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM episode_messages WHERE episode_id = $1) AS timeline,"
            " (SELECT count(*) FROM responsibility_ledger WHERE episode_id = $1) AS ledger,"
            " (SELECT count(*) FROM deadlines WHERE episode_id = $1) AS clocks",
            first.episode_id,
        )
        assert tuple(written) == (1, 1, 1)
        again = await store.lock_or_open_episode(conn, PATIENT, "REF-1", parties=PARTIES, new=opening())
        assert not again.opened
        assert await conn.fetchval("SELECT count(*) FROM episode_messages") == 1  # found: nothing written
    finally:
        await conn.close()
