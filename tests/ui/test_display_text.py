"""The words shown instead of codes (issue 25 item 5) and the NHS number and age as pages show them."""

from __future__ import annotations

from datetime import date

from service.episodes.machine import Kind, State
from service.registry import Participant
from service.ui import display_text
from service.ui.formatting import age_on, format_nhs_number, organisation_formatter


def test_every_state_and_kind_has_words_not_its_code() -> None:
    for state in State:
        assert display_text.state_words(state.value) != state.value and "-" not in display_text.state_words(state)
    for kind in Kind:
        assert display_text.event_words(kind.value) in display_text.EVENTS.values()


def test_alerts_and_unknown_codes_read_as_words() -> None:
    assert display_text.event_words("alert:day-62-breached") == "Safety-net alert (Day 62 target missed)"
    assert display_text.event_words("alert:smdt-outcome-overdue") == "Safety-net alert (SMDT outcome overdue)"
    assert display_text.state_words("some-new-state") == "Some new state"
    assert display_text.audit_words("payload-read") == "Clinical content read"


def test_organisations_are_named_with_their_code_beside() -> None:
    rm1 = Participant("RM1", "Norfolk and Norwich", "referrer", None, (), ())
    old = Participant("RQQ", "Closed Trust", "referrer", None, (), (), active=False)
    org = organisation_formatter({"RM1": rm1, "RQQ": old}.get)
    assert org("RM1") == "Norfolk and Norwich (RM1)"
    assert org("RQQ") == "Closed Trust (RQQ), no longer in the network"
    assert org("XYZ") == "Organisation not in the registry (XYZ)"
    assert org("hub") == "Handover hub"
    assert display_text.role_words("trust:RM1", org) == "Norfolk and Norwich (RM1)"
    assert display_text.role_words("smdt-coordinator", org) == "SMDT coordinator"


def test_nhs_number_in_three_three_four_and_age_in_whole_years() -> None:
    assert format_nhs_number("9991234567") == "999 123 4567"
    assert format_nhs_number("999 123 4567") == "999 123 4567"
    assert format_nhs_number("12345") == "12345"
    assert age_on(date(1958, 3, 14), date(2026, 3, 13)) == 67
    assert age_on(date(1958, 3, 14), date(2026, 3, 14)) == 68
    assert age_on(None, date(2026, 3, 14)) is None
