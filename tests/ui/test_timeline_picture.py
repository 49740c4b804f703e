"""The episode timeline's layout: acknowledgements folded into their message, the safety net's alerts as marks on
the lanes they went to (no "hub" lane), full organisation names with their codes beside, events in the display-text
table's words (never "Alert:" and a code), a time axis with times since the referral, a
legend, and labels that never overlap, for any timeline (property test)."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.store.episode_reads import TimelineEntry
from service.store.episodes import LedgerEntry
from service.ui.acknowledgements import pair_acknowledgements
from service.ui.timeline_picture import draw_timeline, pack_rows, since_referral

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
NAMES = {
    "RM1": "Norfolk and Norwich University Hospitals NHS Foundation Trust",
    "RGT": "Cambridge University Hospitals NHS Foundation Trust (Addenbrooke's)",
    "RGN": "North West Anglia NHS Foundation Trust (Peterborough, Hinchingbrooke)",
}


def entry(
    kind: str, sender: str, recipient: str, at: datetime, acknowledged_at: datetime | None = None
) -> TimelineEntry:
    return TimelineEntry(uuid.uuid4(), kind, sender, recipient, at, True, acknowledged_at)


def closed_episode() -> tuple[list[TimelineEntry], list[LedgerEntry]]:
    """Referral, SMDT acceptance, transfer to the centre and back: each acknowledged (seven acknowledgements)."""
    steps = [
        ("referral", "RM1", "RGT", timedelta(0)),
        ("outcome-accepted", "RGT", "RM1", timedelta(days=9)),
        ("transfer-requested", "RM1", "RGT", timedelta(days=20)),
        ("transfer-accepted", "RGT", "RM1", timedelta(days=20, hours=3)),
        ("discharge-summary", "RGT", "RM1", timedelta(days=31)),
        ("transfer-requested", "RGT", "RM1", timedelta(days=32)),
        ("transfer-accepted", "RM1", "RGT", timedelta(days=32, minutes=40)),
    ]
    timeline = []
    for kind, sender, recipient, after in steps:
        acked = T0 + after + timedelta(minutes=5)
        timeline.append(entry(kind, sender, recipient, T0 + after, acked))
        timeline.append(entry("acknowledgement", recipient, sender, acked))
    timeline.sort(key=lambda t: t.at)
    messages = [t for t in timeline if t.kind != "acknowledgement"]
    ledger = [
        LedgerEntry(0, "RM1", "Sam Localdoc", None, T0, messages[0].message_id, None),
        LedgerEntry(1, "RGT", "Morgan Fenwright", None, messages[3].at, messages[3].message_id, "Morgan Fenwright"),
        LedgerEntry(2, "RM1", "Sam Localdoc", None, messages[6].at, messages[6].message_id, "Sam Localdoc"),
    ]
    return timeline, ledger


def test_acknowledgements_are_folded_into_the_message_they_answer() -> None:
    timeline, ledger = closed_episode()
    pairs = pair_acknowledgements(timeline)
    assert len(pairs) == 7
    by_id = {t.message_id: t for t in timeline}
    for ack, answered in pairs.items():
        assert by_id[ack].kind == "acknowledgement" and by_id[answered].acknowledged_at == by_id[ack].at
    picture = draw_timeline(timeline, ledger, "RM1", "RGT", NAMES.get)
    assert len(picture.arrows) == 7, "seven messages, no arrow of their own for the seven acknowledgements"
    assert not any(a.is_acknowledgement for a in picture.arrows)
    assert all(a.acknowledged_at is not None for a in picture.arrows)


def test_an_acknowledgement_of_nothing_on_the_episode_stays_visible() -> None:
    stray = entry("acknowledgement", "RGT", "RM1", T0)
    assert pair_acknowledgements([stray]) == {}
    [arrow] = draw_timeline([stray], [], "RM1", "RGT").arrows
    assert arrow.is_acknowledgement


def test_alerts_are_marks_on_the_lanes_they_went_to_and_the_hub_is_no_lane() -> None:
    referral = entry("referral", "RM1", "RGT", T0)
    alerts = [entry("alert:day-62-breached", "hub", ods, T0 + timedelta(days=3)) for ods in ("RM1", "RGT")]
    picture = draw_timeline([referral, *alerts], [], "RM1", "RGT", NAMES.get)
    assert [lane.ods for lane in picture.lanes] == ["RM1", "RGT"]
    [mark] = picture.alerts
    assert mark.label == "Safety-net alert (Day 62 target missed)"
    assert sorted(mark.ys) == sorted(lane.y for lane in picture.lanes)
    assert [label.text for label in picture.labels] == [
        "Referral to the specialist MDT",
        "Safety-net alert (Day 62 target missed)",
    ], "the words of the episode page's text list and message table (service/ui/display_text.py)"
    assert any(item.symbol == "alert" for item in picture.legend)


def test_lanes_carry_the_whole_name_of_each_organisation() -> None:
    referral = entry("referral", "RGN", "RGT", T0)
    picture = draw_timeline([referral], [], "RGN", "RGT", NAMES.get)
    for lane in picture.lanes:
        assert " ".join(lane.name_lines) == f"{NAMES[lane.ods]} ({lane.ods})", "wrapped, never cut short"
    last = picture.lanes[-1]
    assert picture.axis_y > last.y + 12 + 14 * len(last.name_lines), "the axis's words start below the last name"
    unknown = draw_timeline([referral], [], "RGN", "RGT").lanes[0].name_lines
    assert " ".join(unknown) == "Organisation not in the registry (RGN)", "never the bare code"


def test_the_axis_gives_the_time_since_the_referral_and_the_date_when_it_changes() -> None:
    timeline, ledger = closed_episode()
    picture = draw_timeline(timeline, ledger, "RM1", "RGT", NAMES.get)
    assert [t.since_referral for t in picture.ticks] == [
        "start",
        "+9 days",
        "+20 days",
        "+20 days",
        "+31 days",
        "+32 days",
        "+32 days",
    ]
    assert [t.date for t in picture.ticks][:3] == ["7 Dec 2026", "16 Dec 2026", "27 Dec 2026"]
    assert picture.ticks[3].date == "", "the same day as the tick before"
    xs = [t.x for t in picture.ticks]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    assert xs[2] - xs[1] > xs[3] - xs[2], "eleven days get more room than three hours"
    assert [item.symbol for item in picture.legend] == ["arrow", "acknowledged", "unacknowledged", "band"]


@pytest.mark.parametrize(
    ("delta", "words"),
    [
        (None, "start"),
        (timedelta(0), "+<1 s"),
        (timedelta(seconds=40), "+40 s"),
        (timedelta(minutes=35, seconds=10), "+35 min"),
        (timedelta(hours=4, minutes=59), "+4 h"),
        (timedelta(days=1, hours=2), "+1 day"),
        (timedelta(days=14), "+14 days"),
    ],
)
def test_times_since_the_referral_read_as_words(delta: timedelta | None, words: str) -> None:
    assert since_referral(delta) == words


def test_packed_rows_never_put_two_overlapping_spans_in_one_row() -> None:
    assert pack_rows([(0, 100), (50, 150), (110, 200), (160, 220)]) == [0, 1, 0, 1]


EPISODE_KINDS = [
    "referral",
    "withdrawal",
    "outcome-accepted",
    "outcome-declined",
    "outcome-more-information-needed",
    "transfer-requested",
    "transfer-accepted",
    "transfer-rejected",
    "discharge-summary",
    "acknowledgement",
]
KINDS = st.sampled_from([*EPISODE_KINDS, "alert:day-62-breached", "alert:acknowledgement-overdue"])
ODS = st.sampled_from(["RM1", "RGT", "RGN", "RDE"])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(KINDS, ODS, ODS, st.integers(min_value=0, max_value=400 * 86400), st.booleans()),
        min_size=1,
        max_size=40,
    )
)
def test_no_two_labels_overlap_and_everything_fits_the_picture(
    events: list[tuple[str, str, str, int, bool]],
) -> None:
    timeline = sorted(
        (
            entry(
                kind,
                "hub" if kind.startswith("alert:") else sender,
                recipient,
                T0 + timedelta(seconds=after),
                T0 + timedelta(seconds=after + 60) if acked else None,
            )
            for kind, sender, recipient, after, acked in events
        ),
        key=lambda t: t.at,
    )
    picture = draw_timeline(timeline, [], "RM1", "RGT", NAMES.get)
    assert "hub" not in [lane.ods for lane in picture.lanes]
    labels = sorted(picture.labels, key=lambda label: (label.y, label.left))
    for one, other in itertools.pairwise(labels):
        if one.y == other.y:
            assert one.right <= other.left, (one, other)
    for label in picture.labels:
        assert label.left >= 0 and label.right <= picture.width
        assert label.y < picture.lanes[0].y - 20, "labels sit above the lanes"
    ticks = [t.x for t in picture.ticks]
    assert ticks == sorted(ticks)
    assert all(b - a >= 80 for a, b in itertools.pairwise(ticks)), "axis labels have room"
    assert max(ticks) <= picture.plot_right
    assert all(item.x + 30 < picture.width and item.y < picture.height for item in picture.legend)
