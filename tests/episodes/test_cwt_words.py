"""A breach allocation in words (hazard HAZ-23): every rule, met or breached, names the accountable trust and the
days that decided it, with organisations by name and the ODS code beside."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from service.episodes.cwt_allocation import Pathway, allocate
from service.episodes.cwt_words import describe_allocation

START = date(2026, 9, 1)
NAMES = {"RM1": "Norfolk and Norwich", "RGT": "Cambridge"}


def words(ipt: int | None, treated: int | None, treating: str = "RGT") -> str:
    p = Pathway(
        "p",
        START,
        START + timedelta(days=ipt) if ipt is not None else None,
        START + timedelta(days=treated) if treated is not None else None,
        "RM1",
        treating,
    )
    return describe_allocation(p, allocate(p), lambda ods: NAMES.get(ods, ods))


@pytest.mark.parametrize(
    ("ipt", "treated", "treating", "expected"),
    [
        (None, None, "RGT", "Not treated yet; the transfer has not reached the centre"),
        (39, None, "RGT", "Not treated yet; the transfer reached Cambridge (RGT) on day 39, after day 38"),
        (
            30,
            50,
            "RGT",
            "Treated on day 50, within 62 days; shared between Norfolk and Norwich (RM1) and Cambridge (RGT): "
            "the transfer reached Cambridge (RGT) on day 30, by day 38",
        ),
        (
            45,
            62,
            "RGT",
            "Treated on day 62, within 62 days; allocated to the treating trust, Cambridge (RGT): the transfer "
            "reached Cambridge (RGT) on day 45, after day 38, and it was treated within 24 days of the transfer "
            "(day 17)",
        ),
        (
            38,
            63,
            "RGT",
            "Breach allocated to the treating trust, Cambridge (RGT): the transfer reached Cambridge (RGT) on day "
            "38, by day 38, but it was treated more than 24 days after the transfer (day 25)",
        ),
        (
            39,
            64,
            "RGT",
            "Breach shared between Norfolk and Norwich (RM1) and Cambridge (RGT): the transfer reached Cambridge "
            "(RGT) on day 39, after day 38, and it was treated more than 24 days after the transfer (day 25)",
        ),
        (
            None,
            40,
            "RGT",
            "Treated on day 40, within 62 days; shared between Norfolk and Norwich (RM1) and Cambridge (RGT): no "
            "IPT received date is recorded",
        ),
        (10, None, "RM1", "One provider, Norfolk and Norwich (RM1): not treated yet"),
        (10, 60, "RM1", "One provider, Norfolk and Norwich (RM1): treated on day 60 against a target of 62"),
    ],
)
def test_every_rule_in_words(ipt: int | None, treated: int | None, treating: str, expected: str) -> None:
    assert words(ipt, treated, treating) == expected
