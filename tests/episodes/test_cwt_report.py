"""The 62-day report per provider (hazard HAZ-23): allocated pathways and breaches as sums of shares,
performance on the allocated share, transfers by day 38, medians of d38 and d24, breaches explained in words; the
JSON body, the CSVs and the report period."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest

from service.episodes.cwt_report import (
    breaches_csv,
    build_report,
    explain,
    period_from_query,
    report_csv,
    report_json,
)
from service.errors import HandoverError
from tests.support.cwt import START, pathway_row

NOW = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
NAMES = {"RM1": "Norfolk and Norwich University Hospitals", "RGT": "Cambridge University Hospitals"}


def name_of(ods: str) -> str:
    return NAMES.get(ods, ods)


ROWS = [
    pathway_row("RM1", "RGT", 30, 50),  # met, by 38: shared 0.5/0.5
    pathway_row("RM1", "RGT", 45, 62),  # met, after 38: treating
    pathway_row("RM1", "RGT", 45, 65),  # breach, after 38, within 24: referring
    pathway_row("RDE", "RGT", 30, 70),  # breach, by 38, not within 24: treating
    pathway_row("RDE", "RGT", 40, 70),  # breach, after 38, not within 24: shared
    pathway_row("RGT", "RGT", 10, 80),  # one provider, breach: solo
    pathway_row("RDE", "RGT", None, 90),  # breach, no IPT date: 0.5/0.5
]


def test_figures_per_provider_are_sums_of_the_allocated_shares() -> None:
    report = build_report(ROWS, START, date(2026, 12, 31), NOW)
    by = {p.ods: p for p in report.providers}
    assert sorted(by) == ["RDE", "RGT", "RM1"]
    assert report.pathways == 7
    assert (by["RM1"].pathways_treated, by["RM1"].allocated_pathways, by["RM1"].allocated_breaches) == (3, 1.5, 1.0)
    assert (by["RDE"].pathways_treated, by["RDE"].allocated_pathways, by["RDE"].allocated_breaches) == (3, 1.0, 1.0)
    assert (by["RGT"].pathways_treated, by["RGT"].allocated_pathways, by["RGT"].allocated_breaches) == (7, 4.5, 3.0)
    assert by["RM1"].performance == pytest.approx(0.5 / 1.5)
    assert by["RDE"].performance == 0.0
    assert by["RGT"].performance == pytest.approx(1.5 / 4.5)
    assert (by["RM1"].transfers, by["RM1"].transfers_by_day_38) == (3, 1)
    assert (by["RDE"].transfers, by["RDE"].transfers_by_day_38) == (2, 1)
    assert by["RGT"].transfers == 0, "a one-provider pathway is no transfer"
    assert by["RM1"].median_d38 == 45.0
    assert by["RDE"].median_d38 == 35.0
    assert by["RGT"].median_d24 == 20.0  # d24 of the five transfers with an IPT date: 20, 17, 20, 40, 30
    assert by["RM1"].median_d24 is None
    assert [b.allocation.rule for b in report.breaches] == ["referring", "treating", "shared", "solo", "no-ipt-date"]


def test_a_provider_with_nothing_allocated_has_no_performance() -> None:
    report = build_report([pathway_row("RM1", "RGT", 45, 62)], START, START, NOW)
    by = {p.ods: p for p in report.providers}
    assert by["RM1"].allocated_pathways == 0.0
    assert by["RM1"].performance is None
    assert by["RGT"].performance == 1.0


def test_each_breach_is_explained_in_words_with_names_and_days() -> None:
    report = build_report(ROWS, START, date(2026, 12, 31), NOW)
    words = [explain(b, name_of) for b in report.breaches]
    assert words[0] == (
        "Breach allocated to the referring trust, Norfolk and Norwich University Hospitals (RM1): the transfer "
        "reached Cambridge University Hospitals (RGT) on day 45, after day 38, and it was treated within 24 days "
        "of the transfer (day 20)"
    )
    assert words[1].startswith("Breach allocated to the treating trust, Cambridge University Hospitals (RGT)")
    assert "on day 30, by day 38" in words[1] and "more than 24 days after the transfer (day 40)" in words[1]
    assert words[2].startswith("Breach shared between RDE and Cambridge University Hospitals (RGT)")
    assert (
        words[3]
        == "Breach of Cambridge University Hospitals (RGT), the only provider: treated on day 80 against a target of 62"
    )
    assert "no IPT received date is recorded; treated on day 90" in words[4]


def test_the_api_body_names_organisations_and_links_each_breach_to_its_episode() -> None:
    report = build_report(ROWS, START, date(2026, 12, 31), NOW)
    body = report_json(report, name_of)
    assert (body["from"], body["to"], body["pathways_treated"]) == ("2026-09-01", "2026-12-31", 7)
    rm1 = next(p for p in body["providers"] if p["provider"] == "RM1")
    assert rm1 == {
        "provider": "RM1",
        "provider_name": NAMES["RM1"],
        "pathways_treated": 3,
        "allocated_pathways": 1.5,
        "allocated_breaches": 1.0,
        "performance": 0.3333,
        "transfers": 3,
        "transfers_by_day_38": 1,
        "median_d38": 45.0,
        "median_d24": None,
    }
    first = body["breaches"][0]
    episode = str(ROWS[2].episode_id)
    assert (first["episode"], first["page"]) == (f"/episodes/{episode}", f"/ui/episodes/{episode}")
    assert (first["allocation_rule"], first["allocation"], first["d38"], first["d24"], first["d62"]) == (
        "referring",
        {"RM1": 1.0},
        45,
        20,
        65,
    )
    assert (first["transferred_by_day_38"], first["treated_within_24_days"], first["met_62_days"]) == (
        False,
        True,
        False,
    )
    assert first["explanation"].startswith("Breach allocated to the referring trust")


def test_the_csvs_open_as_one_row_per_provider_and_per_breach() -> None:
    report = build_report(ROWS, START, date(2026, 12, 31), NOW)
    providers = list(csv.DictReader(io.StringIO(report_csv(report, name_of))))
    assert (providers[0]["provider_name"], providers[0]["provider_ods"]) == ("RDE", "RDE")
    rm1 = next(r for r in providers if r["provider_ods"] == "RM1")
    assert (rm1["allocated_pathways"], rm1["allocated_breaches"], rm1["performance_percent"]) == ("1.5", "1", "33.3")
    assert rm1["median_d24"] == "", "an unmeasured median is blank, not zero"
    breaches = list(csv.DictReader(io.StringIO(breaches_csv(report, name_of))))
    assert len(breaches) == 5
    assert (breaches[0]["referring_share"], breaches[0]["treating_share"], breaches[0]["d62"]) == ("1", "0", "65")
    assert (breaches[3]["referring_share"], breaches[3]["treating_share"]) == ("", "1"), "solo: one share, once"
    assert breaches[4]["ipt_received_date"] == ""


def test_the_period_defaults_to_twelve_months_and_refuses_bad_dates() -> None:
    assert period_from_query(None, None, date(2026, 12, 7)) == (date(2026, 1, 1), date(2026, 12, 7))
    assert period_from_query(None, None, date(2026, 3, 31)) == (date(2025, 4, 1), date(2026, 3, 31))
    assert period_from_query("2026-10-01", "2026-10-31", NOW.date()) == (date(2026, 10, 1), date(2026, 10, 31))
    for asked in [("2026-10-32", None), ("2026-W40-1", None), (None, "31/10/2026"), ("2026-11-01", "2026-10-31")]:
        with pytest.raises(HandoverError) as refused:
            period_from_query(*asked, NOW.date())
        assert refused.value.code.status == 400
