"""Every staff page, as each role reads it, in real Chromium at 375 px (a phone) and 1366 px (issue 25 items 5
and 6): no page is wider than the screen (tables scroll inside their own region), axe-core finds no serious
violation at either width, and no raw code reaches a person: no event, state or alert code, no snake_case, no
ODS code without the organisation's name beside it, in the page's text or in its SVG pictures (the timeline's
lanes and labels, the charts' axes, the Cancer Waiting Times picture). One browser per role, each visiting its
pages at both widths; the SMDT coordinator's episode is on a cancer pathway, so its CWT section is scanned too."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from service.episodes.machine import State
from tests.ui.browser import Browser, assert_accessible, browser_for, sign_in
from tests.ui.demo_hub import DemoHub
from tests.ui.page_paths import payload_path

WIDTHS = ((375, True), (1366, False))
PAGES: dict[str, list[str | Callable[[DemoHub], str]]] = {
    "governance": [
        "/ui/",
        "/ui/episodes",
        "/ui/episodes?breach=any&sort=oldest",
        lambda hub: f"/ui/episodes/{hub.episode_of('RM1', 'closed')}",
        "/ui/governance",
        "/ui/governance/cwt",
        "/ui/audit",
        "/ui/deliveries",
        payload_path,
    ],
    "smdt-coordinator": [
        "/ui/",
        "/ui/episodes",
        "/ui/meeting",
        lambda hub: f"/ui/episodes/{hub.episode_of('RM1', 'referred')}",
    ],
    "trust:RM1": ["/ui/", "/ui/episodes", lambda hub: f"/ui/episodes/{hub.episode_of('RM1', 'closed')}"],
    "ops": ["/ui/", "/ui/deliveries"],
}
SHOWS_CWT = {"smdt-coordinator"}  # a role whose pages include an episode's Cancer Waiting Times section
RAW_CODES = [
    re.compile(r"\b(smdt-outcome|transfer-response|discharge-summary|acknowledgement-overdue)\b"),
    re.compile(r"Alert:|alert:|\bSmdt\b"),  # a code capitalised is still a code
    re.compile(r"\b[a-z]+_[a-z_]+\b"),  # snake_case
    re.compile(r"\b(" + "|".join(re.escape(s.value) for s in State if "-" in s.value) + r")\b"),
    re.compile(r"\b(outcome-accepted|outcome-declined|referral-outcome|transfer-of-care|message-accepted)\b"),
]


def raw_codes(text: str, ods_codes: list[str]) -> list[str]:
    """The raw codes in a page's visible text: known patterns, and ODS codes not in "(CODE)" after a name."""
    found = [m.group(0) for pattern in RAW_CODES for m in pattern.finditer(text)]
    for ods in ods_codes:
        found += [f"bare {ods}" for m in re.finditer(rf"\b{ods}\b", text) if text[m.start() - 1 : m.start()] != "("]
    return found


def test_raw_code_scan_finds_what_it_should() -> None:
    assert raw_codes("Smdt outcome owed by RGT to Norfolk (RM1); Alert:day 62; declined-closed; a_b", ["RGT", "RM1"])
    assert raw_codes("Smdt outcome owed by Cambridge (RGT)", ["RGT"]) == ["Smdt"]
    assert not raw_codes("Owed by Cambridge University Hospitals (RGT) to Norfolk (RM1)", ["RGT", "RM1"])


def _ods_codes(page: Browser) -> list[str]:
    options = page.driver.execute_script(
        "return [...document.querySelectorAll('option')].map(o => o.value).filter(v => /^[A-Z0-9]{3,5}$/.test(v))"
    )
    return sorted(set(options) | {"RM1", "RGT", "RDE", "RGN", "RC9", "RGP", "RCX", "RGR"})


def _text_of_pictures(page: Browser) -> str:
    """The words in the page's SVG pictures, one text element (or tooltip) a line."""
    return str(
        page.driver.execute_script(
            "return [...document.querySelectorAll('svg text, svg title')].map(t => t.textContent).join('\\n');"
        )
    )


def _text_outside_pictures(page: Browser) -> str:
    """The page's visible text without its SVG pictures (the charts and timeline name organisations in their
    own figure text and tables, tested with the chart code)."""
    return str(
        page.driver.execute_script(
            "const svgs = [...document.querySelectorAll('svg')]; svgs.forEach(s => s.style.display = 'none');"
            "const text = document.body.innerText; svgs.forEach(s => s.style.display = ''); return text;"
        )
    )


@pytest.mark.parametrize("role", list(PAGES))
def test_pages_fit_a_phone_pass_axe_and_show_no_codes(role: str, demo: DemoHub) -> None:
    problems: list[str] = []
    cwt_seen = False
    with browser_for(demo) as page:
        sign_in(page, demo, role)
        for width, mobile in WIDTHS:
            page.driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": mobile},
            )
            for entry in PAGES[role]:
                path = entry if isinstance(entry, str) else entry(demo)
                page.open(path)
                assert page.find("h1").text, path
                scroll_width = page.driver.execute_script("return document.documentElement.scrollWidth")
                if scroll_width > width:
                    problems.append(f"{path} at {width}px is {scroll_width}px wide")
                assert_accessible(page)
                cwt_seen = cwt_seen or bool(page.driver.execute_script("return !!document.getElementById('cwt')"))
                if width == WIDTHS[0][0]:
                    codes = raw_codes(_text_outside_pictures(page), _ods_codes(page))
                    if codes:
                        problems.append(f"{path}: raw codes {sorted(set(codes))[:8]}")
                    codes = raw_codes(_text_of_pictures(page), _ods_codes(page))
                    if codes:
                        problems.append(f"{path}: raw codes in a picture {sorted(set(codes))[:8]}")
    assert not problems, problems
    assert cwt_seen or role not in SHOWS_CWT, "the Cancer Waiting Times section is scanned"


def test_the_meeting_list_prints_as_a_table_without_the_page_furniture(demo: DemoHub) -> None:
    with browser_for(demo) as page:
        sign_in(page, demo, "smdt-coordinator")
        page.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride", {"width": 700, "height": 800, "deviceScaleFactor": 1, "mobile": False}
        )
        page.open("/ui/meeting")
        assert page.find("button[data-print]").is_displayed()
        page.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
        assert not page.find("header.nhsuk-header").is_displayed()
        assert not page.find("button[data-print]").is_displayed()
        assert page.find("#meeting thead").is_displayed()  # the column names, not the phone's stacked labels
        assert not page.find("#meeting .nhsuk-table-responsive__heading").is_displayed()
        assert page.driver.execute_script("return getComputedStyle(document.querySelector('#meeting td')).display") == (
            "table-cell"
        )
