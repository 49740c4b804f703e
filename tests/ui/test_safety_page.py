"""The clinical safety page `/ui/safety` (hazard log HAZ-17: only governance staff): the hazard log with each
control's tests and their last results, behind sign-in, for the governance role only."""

from __future__ import annotations

import html
import re

from service.safety.hazardlog import load_hazard_log
from service.safety.report import HAZARD_LOG, build_safety_case, hazard_log_fragment
from tests.support.hub import RunningHub
from tests.ui.http_signin import BROWSER


async def test_safety_page_shows_the_hazard_log_to_governance_only(ui_hub: RunningHub, signed_in) -> None:
    url = f"{ui_hub.base_url}/ui/safety"
    async with ui_hub.session.get(url, headers=BROWSER, allow_redirects=False) as resp:
        assert resp.status == 303, "sign in first"
    for subject in ("sam.patel", "lewis.grant", "jo.whitfield"):  # ops, a trust, the SMDT coordinator
        other = await signed_in(subject)
        async with other.client.get(url, allow_redirects=False) as resp:
            assert resp.status == 403, subject
            assert "HAZ-01" not in await resp.text()
    governance = await signed_in("amara.okafor")
    async with governance.client.get(url, allow_redirects=False) as resp:
        assert resp.status == 200
        assert "unsafe-inline" not in resp.headers["Content-Security-Policy"]
        page = html.unescape(await resp.text())
    log = load_hazard_log(HAZARD_LOG)
    for hazard in log.hazards:
        assert f"{hazard.id}: {hazard.title}" in page
    assert "test_wrong_patient_a_later_message_naming_another_nhs_number_is_refused" in page
    assert re.search(r'href="/ui/safety"[^>]*>Safety<', page), "in the governance navigation"
    assert "<script>" not in page


def test_without_test_evidence_the_page_says_what_it_shows_without_alarm() -> None:
    """The demo has run no tests: the page said "no test run" and "0 of N passed" against every hazard."""
    case = build_safety_case(load_hazard_log(HAZARD_LOG), None)
    assert not case.has_evidence
    page = html.unescape(hazard_log_fragment(case))
    assert "No test results have been recorded on this hub" in page and "make safety" in page
    assert not re.search(r"\b0 of \d+", page)
    for alarm in ("did not run", "not run", "FAILED", "no test run", "Not every control"):
        assert alarm not in page, alarm
    assert "test_wrong_patient_a_later_message_naming_another_nhs_number_is_refused" in page, "the tests are named"
