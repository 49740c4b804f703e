"""Reading a message as a letter: each message of the pathway, coded values with their display text, the patient
as a letter names them, the sender's narrative as text only, and nothing raised by odd input."""

from __future__ import annotations

import copy
from datetime import date

from service.ui.letter import coding_text, narrative_lines, nhs_number_spaced, read_letter
from tests.episodes.test_pathway_over_http import pathway


def facts(section: object) -> dict[str, str]:
    return {f.label: f.value for f in section.facts}  # type: ignore[attr-defined]


def test_a_referral_reads_as_a_letter_with_the_patient_and_coded_reason() -> None:
    story = pathway(601, start=date(2026, 11, 1))
    letter = read_letter(story.referral())
    assert letter.title == "Referral to the specialist MDT"
    assert letter.sender.endswith("(RM1)") and letter.recipient.endswith("(RGT)")
    assert letter.patient is not None
    assert letter.patient.name == "Alex TESTPATIENT"
    assert letter.patient.nhs_number == nhs_number_spaced(story.patient.nhs_number)
    assert letter.patient.born == date(1958, 3, 14) and letter.patient.gender == "Female"
    [referral] = letter.sections
    shown = facts(referral)
    assert shown["Reason"] == "Secondary malignant neoplasm of liver (94381002)"
    assert shown["Cancer pathway start date"] == "1 November 2026"
    assert "KEYWORKER" in shown["Key worker"]
    assert referral.lines == ["Local MDT: colorectal liver metastases, for SMDT opinion on resection."]


def test_an_smdt_outcome_shows_the_decision_by_its_display_text() -> None:
    story = pathway(602)
    story.referral()
    letter = read_letter(story.outcome("accepted"))
    decision = next(s for s in letter.sections if s.heading == "SMDT decision")
    assert facts(decision)["Decision"] == "Accepted (accepted)"
    assert facts(decision)["Decided by"].endswith("(RGT)")


def test_a_discharge_summary_shows_each_section_with_its_text() -> None:
    story = pathway(603)
    story.referral()
    letter = read_letter(story.discharge_summary())
    headings = [s.heading for s in letter.sections]
    assert headings[0] == "Discharge summary"
    assert {"Diagnoses", "Medications and medical devices", "Plan and requested actions"} <= set(headings)
    plan = next(s for s in letter.sections if s.heading == "Plan and requested actions")
    assert plan.lines and facts(plan)["Section code"] == "Plan and requested actions (887201000000105)"


def test_narrative_markup_never_passes_through() -> None:
    lines = narrative_lines(
        {
            "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>One &amp; two</p><script>alert(1)</script>'
            '<ul><li>first</li><li>second <b>bold</b></li></ul><img src="x" onerror="y"/></div>'
        }
    )
    assert lines == ["One & two", "alert(1)", "first", "second bold"]
    assert not any("<" in line for line in lines)


def test_odd_or_empty_bundles_do_not_raise() -> None:
    assert read_letter({}).title == "Message"
    story = pathway(604)
    broken = copy.deepcopy(story.referral())
    for entry in broken["entry"][1:]:
        entry["resource"].pop("name", None)
        entry["resource"]["extension"] = "not a list"
    broken["entry"].append({"resource": "not an object"})
    letter = read_letter(broken)
    assert letter.title == "Referral to the specialist MDT"


def test_codings_without_display_are_looked_up_in_our_code_systems() -> None:
    assert coding_text({"system": "https://example.org/unknown", "code": "x1"}) == "x1"
    assert coding_text({"code": "94381002", "display": "Liver metastases"}) == "Liver metastases (94381002)"
