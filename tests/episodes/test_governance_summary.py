"""The governance summary from per-trust figures: network totals per year against the IOG target, the API body
and the CSV download."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from service.episodes.governance import IOG_RESECTIONS_PER_YEAR, summarise, summary_csv, summary_json
from service.store.governance_reads import TrustYearFigures

NOW = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
FIGURES = [
    TrustYearFigures("RDE", 2026, 90, 60, 55, 1, 9.25, 20.0),
    TrustYearFigures("RM1", 2025, 120, 100, 210, 0, 8.0, None),
    TrustYearFigures("RM1", 2026, 150, 120, 150, 2, 11.333, 3.5, day_38_breaches=1, day_62_breaches=2),
]


def test_network_totals_per_year_against_the_iog_target() -> None:
    summary = summarise(FIGURES, NOW)
    assert [(n.year, n.referrals, n.resections, n.overdue) for n in summary.network] == [
        (2026, 240, 205, 6),
        (2025, 120, 210, 0),
    ]
    assert all(n.iog_resections_target == IOG_RESECTIONS_PER_YEAR for n in summary.network)
    assert [n.meets_iog_target for n in summary.network] == [True, True]
    assert summary.overdue_total == 6, "answers and breached clocks, as the worklist counts them"
    assert [r.trust for r in summary.trusts_in(2026)] == ["RDE", "RM1"]
    assert summarise(FIGURES[:1], NOW).network[0].meets_iog_target is False


def test_the_api_body_keeps_its_shape() -> None:
    body = summary_json(summarise(FIGURES, NOW))
    assert body["generated_at"] == NOW.isoformat()
    assert body["trusts"][2] == {
        "trust": "RM1",
        "year": 2026,
        "referrals": 150,
        "accepted": 120,
        "resections": 150,
        "overdue": 5,
        "overdue_answers": 2,
        "day_38_breaches": 1,
        "day_62_breaches": 2,
        "median_days_referral_to_smdt_outcome": 11.33,
        "median_hours_transfer_acceptance": 3.5,
    }
    assert [n["year"] for n in body["network"]] == [2025, 2026]
    assert body["network"][1]["meets_iog_target"] is True
    assert body["overdue_total"] == 6


def test_the_csv_has_a_row_per_trust_and_year_then_the_network() -> None:
    rows = list(csv.reader(io.StringIO(summary_csv(summarise(FIGURES, NOW)))))
    assert rows[0][:3] == ["trust", "year", "referrals"]
    assert rows[1] == ["RDE", "2026", "90", "60", "55", "9.25", "20.00", "1", "1", "0", "0"]
    assert rows[3][7:] == ["5", "2", "1", "2"], "overdue, then its parts: answers, day 38, day 62"
    assert rows[2][6] == "", "an unmeasured median is blank, not zero"
    assert rows[-2:] == [
        ["network", "2025", "120", "100", "210", "", "", "0", "", "", ""],
        ["network", "2026", "240", "180", "205", "", "", "6", "", "", ""],
    ]
