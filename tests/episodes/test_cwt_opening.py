"""A referral that opens its episode writes the episode's first Cancer Waiting Times dates with it, in the opening
statement (issue 28 item 5), instead of reading them back and updating them: the same episode row, the same IPT
received date for the receipt, the same refusal, as the read-then-update it stands in for, which the tracker still
takes when the dates cannot be worked out before the episode is found (shown here by forcing it)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from adapters.pathway import Pathway
from service.episodes import tracker
from service.episodes.cwt_reading import london_date
from service.episodes.tracker import EpisodeTracker, StoredMessage
from service.errors import HandoverError
from service.pseudonyms import Pseudonymiser
from service.store import messages
from service.validation.bundle import BundleIndex
from tests.support.databases import DatabaseFactory
from tests.support.messages import pathway

NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.date()
EPISODE_COLUMNS = (
    "state, pathway_start, ipt_received_date, ipt_received_message_id, decision_to_refer_date, decision_to_treat_date,"
    " treatment_date, treatment_opcs4, faster_diagnosis_date, adjustment_days_referring, adjustment_days_treating,"
    " opened_at, updated_at, birth_date_hmac, key_worker_name"
)


@dataclass(frozen=True)
class Read:
    """The referral as the tracker reads it: its MessageHeader and its one index."""

    bundle: dict[str, Any]

    @property
    def header(self) -> dict[str, Any]:
        header: dict[str, Any] = self.bundle["entry"][0]["resource"]
        return header

    @property
    def index(self) -> BundleIndex:
        return BundleIndex(self.bundle)


CASES: dict[str, Pathway] = {
    "not a cancer pathway": pathway(1),
    "cancer pathway": pathway(2, start=TODAY - timedelta(days=3)),
    "cancer pathway with its IPT items": replace(
        pathway(3, start=TODAY - timedelta(days=9)),
        decision_to_refer=TODAY - timedelta(days=2),
        faster_diagnosis=TODAY - timedelta(days=1),
        adjustment_days_referring=4,
    ),
    "decision to refer after today": replace(
        pathway(4, start=TODAY - timedelta(days=9)), decision_to_refer=TODAY + timedelta(days=5)
    ),
}


async def opened(dsn: str, bundle: dict[str, Any], message_id: uuid.UUID) -> tuple[Any, ...]:
    """Apply the referral `bundle` in a database of its own: its IPT received date (or the refusal), its episode."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            sealed = messages.EncryptedPayload(b"ciphertext", b"\x00" * 12, 1, "kek", b"wrapped")
            stored = messages.NewMessage(
                message_id,
                "RM1",
                "RGT",
                "referral",
                str(uuid.uuid4()),
                None,
                "ab" * 32,
                sealed,
                uuid.uuid4(),
                None,
                NOW,
            )
            assert await messages.insert_message(conn, stored)
        try:
            async with conn.transaction():
                said = await EpisodeTracker(Pseudonymiser(b"k" * 32)).record(
                    conn, Read(bundle), StoredMessage(message_id, "referral", "RM1", "RGT", NOW)
                )
        except HandoverError as refused:
            said = (refused.code, str(refused))
        row = await conn.fetchrow(f"SELECT {EPISODE_COLUMNS} FROM episodes")  # noqa: S608 - constant columns
        timeline = await conn.fetch("SELECT kind, changed FROM episode_messages")
        deadlines = await conn.fetch("SELECT kind, due_at FROM deadlines ORDER BY kind")
        return said, None if row is None else tuple(row), [tuple(r) for r in timeline], [tuple(r) for r in deadlines]
    finally:
        await conn.close()


@pytest.mark.parametrize("case", list(CASES))
async def test_the_opening_writes_what_reading_back_and_updating_wrote(
    case: str, databases: DatabaseFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    message_id, bundle = uuid.uuid4(), CASES[case].referral()
    now_dsn, before_dsn = await databases.create(), await databases.create()
    try:
        now = await opened(now_dsn, bundle, message_id)
        monkeypatch.setattr(tracker, "_cwt_items_or_none", lambda read, message: None)  # the path taken before
        before = await opened(before_dsn, bundle, message_id)
    finally:
        await databases.drop(now_dsn)
        await databases.drop(before_dsn)
    assert now == before
    said, row, _, _ = now
    if case == "decision to refer after today":
        assert said[0].value == "invalid-transition" and row is None
    elif case == "not a cancer pathway":
        assert said is None and row is not None and row[2] is None
    else:
        assert said == london_date(NOW)
        assert row is not None and row[2] == said and row[3] == message_id
