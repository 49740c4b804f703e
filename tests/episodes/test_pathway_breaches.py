"""One definition of the day-38 and day-62 breach (service/store/pathway_breaches.py): the worklist, the episode
list, the governance figures and the safety net's clock alerts give the same answer for the same episode on the
same day, and the episode page's Python clock (service/episodes/clocks.py) agrees with the SQL.

Episodes are written straight into PostgreSQL (synthetic rows, no patient data) so that each case is exactly the
dates it names: an IPT received date, adjustment days, a treatment date, a state."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from service.episodes.clocks import pathway_clock
from service.episodes.clockwatch import due_alerts
from service.store import episode_list, governance_reads, pathway_clocks, worklist_reads
from service.store.cwt import CwtDates
from service.store.pathway_breaches import breach_columns

NOW = datetime(2026, 12, 7, 23, 30, tzinfo=UTC)  # 23:30 UTC, still 7 December in London (GMT)
TODAY = date(2026, 12, 7)
CENTRE = "RGT"


@dataclass(frozen=True)
class Case:
    referrer: str  # one referring trust per case, so the governance figures answer per case
    state: str
    start_days_ago: int  # the clock start, in days before TODAY
    opened_on_day: int  # the day of the pathway on which the first referral reached the hub
    ipt_on_day: int | None
    treated_on_day: int | None = None
    adjust_referring: int = 0
    adjust_treating: int = 0

    def day(self, n: int) -> date:
        return TODAY - timedelta(days=self.start_days_ago) + timedelta(days=n)


# The disagreements this wave found (each was answered differently by the four readers before the fix):
ADJUSTED_38 = Case("RA1", "referred", 50, opened_on_day=40, ipt_on_day=40, adjust_referring=5)  # target day 43: met
PENDING_IPT = Case("RB2", "more-information-needed", 45, opened_on_day=30, ipt_on_day=None)  # day 45, incomplete
RESENT_LATE = Case("RC3", "referred", 45, opened_on_day=20, ipt_on_day=41)  # completed on day 41 after more-info
ADJUSTED_62 = Case("RD4", "accepted", 64, opened_on_day=10, ipt_on_day=10, adjust_treating=5)  # target day 67
PLAIN_62 = Case("RE5", "transfer-requested", 63, opened_on_day=10, ipt_on_day=10)  # day 63, untreated: breached
EXPECTED = {  # (day 38 breached, day 62 breached) by the contract's definition
    ADJUSTED_38: (False, False),
    PENDING_IPT: (True, False),
    RESENT_LATE: (True, False),
    ADJUSTED_62: (False, False),
    PLAIN_62: (False, True),
}


async def insert(conn: asyncpg.Connection, case: Case) -> uuid.UUID:
    episode_id = uuid.uuid4()
    opened_at = datetime.combine(case.day(case.opened_on_day), datetime.min.time(), UTC) + timedelta(hours=10)
    await conn.execute(
        "INSERT INTO episodes (id, nhs_number_hmac, referral_identifier, referrer_ods, centre_ods, state, snapshot,"
        " pathway_start, opened_at, updated_at, ipt_received_date, treatment_date, adjustment_days_referring,"
        " adjustment_days_treating) VALUES ($1, $2, $3, $4, $5, $6, '{\"ledger\": []}', $7, $8, $8, $9, $10, $11, $12)",
        episode_id,
        episode_id.hex * 2,
        f"urn:uuid:{uuid.uuid4()}",
        case.referrer,
        CENTRE,
        case.state,
        case.day(0),
        opened_at,
        None if case.ipt_on_day is None else case.day(case.ipt_on_day),
        None if case.treated_on_day is None else case.day(case.treated_on_day),
        case.adjust_referring,
        case.adjust_treating,
    )
    return episode_id


@pytest.fixture
async def conn(database: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database)
    try:
        yield connection
    finally:
        await connection.close()


async def answers(conn: asyncpg.Connection, ids: dict[uuid.UUID, Case]) -> dict[str, dict[Case, tuple[bool, bool]]]:
    """Each reader's (day 38 breached, day 62 breached) per case, within what that reader shows: the worklist and
    the governance figures show day 38 while the SMDT has not answered and day 62 while untreated."""
    listed = await episode_list.list_page(
        conn, episode_list.EpisodeFilter(), now=NOW, today=TODAY, sort="oldest", limit=100, offset=0
    )
    items, _ = await worklist_reads.worklist_page(
        conn,
        worklist_reads.WorklistFilter(None, None, None, False),
        now=NOW,
        today=TODAY,
        horizon_days=7,
        limit=100,
        offset=0,
    )
    figures = {f.trust: f for f in await governance_reads.trust_year_figures(conn, NOW)}
    async with conn.transaction():
        leased = await pathway_clocks.lease_due_clocks(conn, TODAY, warning_days=7, limit=100)
    alerts = {e.id: {code for code, _ in due_alerts(e, TODAY, 7)} for e in leased}
    return {
        "episode list": {ids[e.id]: (e.day38_breached, e.day62_breached) for e in listed},
        "worklist": {
            case: (
                any(i.item == "day-38" for i in items if i.episode_id == episode_id),
                any(i.item == "day-62" and i.due.date() < TODAY for i in items if i.episode_id == episode_id),
            )
            for episode_id, case in ids.items()
        },
        "governance": {
            case: (figures[case.referrer].day_38_breaches == 1, figures[case.referrer].day_62_breaches == 1)
            for case in ids.values()
        },
        "alerts": {
            case: ("day-38-breached" in alerts.get(i, set()), "day-62-breached" in alerts.get(i, set()))
            for i, case in ids.items()
        },
    }


async def test_worklist_episode_list_governance_and_alerts_give_one_answer(conn: asyncpg.Connection) -> None:
    ids = {await insert(conn, case): case for case in EXPECTED}
    wrong = [
        f"{reader} says {answer[case]} for {case}"
        for reader, answer in (await answers(conn, ids)).items()
        for case, expected in EXPECTED.items()
        if answer[case] != expected
    ]
    assert wrong == []


GRID = [
    Case(f"R{i:02d}", state, 70, 10, ipt, treated, adjust_referring, adjust_treating)
    for i, (state, ipt, treated, adjust_referring, adjust_treating) in enumerate(
        (state, ipt, treated, ar, at)
        for state in ("referred", "more-information-needed", "accepted", "withdrawn", "declined-closed")
        for ipt in (None, 38, 39, 42)
        for treated in (None, 62, 63, 66)
        for ar in (0, 3)
        for at in (0, 2)
        if not (treated is not None and state in ("referred", "more-information-needed"))
    )
]


async def test_the_episode_page_clock_agrees_with_the_sql_definition(conn: asyncpg.Connection) -> None:
    ids = {await insert(conn, case): case for case in GRID}
    columns = breach_columns("e", "$1::date")
    records = await conn.fetch(f"SELECT e.id, {columns} FROM episodes e", TODAY)  # noqa: S608 - constant SQL
    assert len(records) == len(GRID)
    for r in records:
        case = ids[r["id"]]
        clock = pathway_clock(
            case.day(0),
            treated_at=None,
            today=TODAY,
            stopped=case.state in ("withdrawn", "declined-closed"),
            cwt=CwtDates(
                clock_start=case.day(0),
                ipt_received_date=None if case.ipt_on_day is None else case.day(case.ipt_on_day),
                treatment_date=None if case.treated_on_day is None else case.day(case.treated_on_day),
                adjustment_days_referring=case.adjust_referring,
                adjustment_days_treating=case.adjust_treating,
            ),
        )
        sql = (r["transfer_target"], r["treatment_target"], r["day_38_breached"], r["day_62_breached"])
        python = (clock.transfer_target, clock.treatment_target, clock.transfer_breached, clock.treatment_breached)
        assert sql == python, case


def test_an_incomplete_referral_has_no_transfer_date_and_its_clock_runs_until_the_episode_closes() -> None:
    start = TODAY - timedelta(days=40)
    pending = CwtDates(clock_start=start)  # no IPT received date: the referral is not yet complete
    clock = pathway_clock(start, treated_at=None, today=TODAY, cwt=pending)
    assert clock.transferred_on is None and clock.as_json()["transferred_on"] is None
    assert clock.transfer_breached, "day 40 and still not complete: past the day-38 target"
    assert not pathway_clock(start, treated_at=None, today=TODAY - timedelta(days=2), cwt=pending).transfer_breached
    assert not pathway_clock(start, treated_at=None, today=TODAY, cwt=pending, stopped=True).transfer_breached
    at_centre = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)  # 23:30 UTC in winter: 6 December in London too
    assert pathway_clock(start, treated_at=at_centre, today=TODAY).treated_on == date(2026, 12, 6)
    summer = datetime(2026, 7, 1, 23, 30, tzinfo=UTC)  # 00:30 on 2 July in London (BST)
    assert pathway_clock(start, treated_at=summer, today=TODAY).treated_on == date(2026, 7, 2)
