"""The human-readable profile pages (service/profilepages.py) are generated from the conformance resources: a page
per profile with its element table, a page per message with its example, the codes, and nothing unescaped."""

from __future__ import annotations

import json
from pathlib import Path

from service.profilepages import render_pages, write_profile_pages
from service.terminology import PROFILES_DIR
from service.validation import load_validator


def test_every_profile_and_message_has_a_page(tmp_path: Path) -> None:
    written = {path.stem for path in write_profile_pages(tmp_path / "docs" / "profiles")}
    profiles = {p.stem.removeprefix("StructureDefinition-") for p in PROFILES_DIR.glob("StructureDefinition-*.json")}
    messages = {
        "message-" + p.stem.removeprefix("MessageDefinition-") for p in PROFILES_DIR.glob("MessageDefinition-*.json")
    }
    assert {"index", "terminology"} | profiles | messages == written


def test_a_profile_page_shows_its_elements_rules_and_bindings() -> None:
    page = render_pages(load_validator().conformance, lambda name: f"{name}.html")["handover-referral"]
    for words in (
        "ServiceRequest.requester",
        "1..",  # cardinality column
        "hov-ref-1",
        "reasonCode.exists() or reasonReference.exists()",
        'href="handover-practitionerrole.html"',  # reference targets link to their profiles
        "extensible",
    ):
        assert words in page, words


def test_a_message_page_shows_focus_responses_invalid_examples_and_the_example() -> None:
    pages = render_pages(load_validator().conformance, lambda name: f"/ui/profiles/{name}")
    page = pages["message-transfer-of-care"]
    example = json.loads((PROFILES_DIR / "examples" / "Bundle-transfer-of-care.json").read_text())
    assert 'href="/ui/profiles/handover-transfer-of-care"' in page
    assert "transfer-of-care-response" in page and "transfer-of-care-same-organisation" in page
    assert example["identifier"]["value"] in page
    assert "referral-outcome" not in pages["message-referral"].split("Invalid examples")[1].split("Example")[0]


def test_the_terminology_page_lists_codes() -> None:
    page = render_pages(load_validator().conformance, lambda name: name)["terminology"]
    for code in ("more-information-needed", "887201000000105", "transient-error", "referral-outcome"):
        assert code in page


def test_text_from_the_resources_is_escaped(tmp_path: Path) -> None:
    pages = render_pages(load_validator().conformance, lambda name: name)
    assert all("<script" not in page for page in pages.values())
    assert "&lt;div xmlns=" in pages["message-discharge-summary"]  # the narrative inside the example is shown as text


def test_the_make_target_entry_point_writes_the_pages(tmp_path: Path) -> None:
    from service.profilepages import main

    assert main([str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "index.html").is_file()
