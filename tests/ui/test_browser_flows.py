"""The staff pages in real headless Chromium, each flow through the real OIDC sign-in against the development
provider, on a hub that has played the demo's East Anglia scenario."""

from __future__ import annotations

import time
from pathlib import Path

from adapters.builders import synthetic_nhs_number
from adapters.demo import AWAITING_SEED
from tests.support.hub import Network
from tests.ui.browser import Browser, assert_accessible, browser_for, sign_in
from tests.ui.demo_hub import DemoHub, demo_hub

DEMO_NHS_NUMBERS = [synthetic_nhs_number(seed * 7919) for seed in range(1, AWAITING_SEED + 1)]


def assert_no_nhs_number_in_urls(page: Browser) -> None:
    urls = page.urls_requested()
    assert urls, "the browser log recorded no requests"
    assert not [u for u in urls if any(n in u for n in DEMO_NHS_NUMBERS)], "an NHS number appeared in a URL"


def test_governance_sees_the_worklist_with_the_demos_overdue_item(page: Browser, demo: DemoHub) -> None:
    sign_in(page, demo, "governance")
    assert page.find("h1").text.startswith("Worklist")
    rows = page.find_all("#worklist tbody tr")
    waiting = str(demo.episode_of("RM1", "referred"))
    overdue = [r for r in rows if "Day 62 target passed" in r.text]
    assert overdue, page.text
    assert waiting in overdue[0].find_element("css selector", "a").get_attribute("href")
    assert any("Awaiting SMDT outcome" in r.text for r in rows)
    assert_accessible(page)
    assert_no_nhs_number_in_urls(page)


def test_one_click_from_the_worklist_answers_who_is_responsible_since_when_and_who_accepted(
    page: Browser, demo: DemoHub
) -> None:
    sign_in(page, demo, "governance")
    page.find("#worklist tbody tr a").click()  # the most urgent item: RM1's patient awaiting the SMDT
    page.wait_for_path(lambda path: path.startswith("/ui/episodes/"))
    assert (
        "Dr Localdoc8" in page.find("#responsible-clinician").text
        or "Localdoc8" in page.find("#responsible-clinician").text
    )
    assert page.find("#responsible-since").text
    assert "referral" in page.find("#responsible-accepted-by").text
    assert "Breached" in page.find("#clocks").text
    assert "Keyworker8" in page.find("#key-worker").text
    assert_accessible(page)


def test_an_episode_shows_responsibility_ledger_timeline_picture_and_verified_proofs(
    page: Browser, demo: DemoHub
) -> None:
    sign_in(page, demo, "governance")
    journey = demo.episode_of("RM1", "closed")  # the whole handover: to the centre and back
    page.find("#nhs_number").send_keys(DEMO_NHS_NUMBERS[0])
    page.click_button("Search")
    page.wait_for_path(lambda path: path == "/ui/search")
    page.find(f"#search-results a[href='/ui/episodes/{journey}']").click()
    page.wait_for_path(lambda path: path == f"/ui/episodes/{journey}")
    responsible = page.find("#responsible-now").text
    assert "Localdoc1" in responsible
    assert "Norfolk and Norwich" in responsible
    accepted_by = page.find("#responsible-accepted-by").text
    assert "Localdoc1" in accepted_by  # the local clinician accepted the transfer back
    ledger = page.find_all("#ledger tbody tr")
    assert [r.find_elements("css selector", "td")[2].text for r in ledger] == [
        "Norfolk and Norwich University Hospitals NHS Foundation Trust (RM1)",
        "Cambridge University Hospitals NHS Foundation Trust (Addenbrooke's) (RGT)",
        "Norfolk and Norwich University Hospitals NHS Foundation Trust (RM1)",
    ]  # organisations by name, code beside
    picture = page.find("svg#timeline-picture")
    assert picture.get_attribute("role") == "img"
    assert len(page.find_all("svg#timeline-picture g.message-arrow")) == len(page.find_all("#timeline-text li"))
    assert len(page.find_all("svg#timeline-picture rect.responsibility-band")) == 3
    assert page.find_all("#messages .proof-verified")
    assert not page.find_all("#messages .proof-failed")
    assert_accessible(page)
    assert_no_nhs_number_in_urls(page)


def test_the_smdt_coordinator_sees_the_centres_queue(page: Browser, demo: DemoHub) -> None:
    sign_in(page, demo, "smdt-coordinator")
    assert (
        "SMDT queue at Cambridge University Hospitals NHS Foundation Trust (Addenbrooke's) (RGT)"
        in page.find("h1").text
    )
    rows = page.find_all("#worklist tbody tr")
    assert any("Awaiting SMDT outcome" in r.text and "owed by Cambridge University Hospitals" in r.text for r in rows)
    assert all("owed by Cambridge University Hospitals" in r.text or "Day " in r.text for r in rows)  # the centre owes
    assert_accessible(page)


def test_a_trust_user_is_refused_another_trusts_episode_and_nothing_leaks(page: Browser, demo: DemoHub) -> None:
    sign_in(page, demo, "trust:RDE")
    assert "Patients of East Suffolk and North Essex NHS Foundation Trust (Ipswich) (RDE)" in page.find("h1").text
    assert "Localdoc8" not in page.text  # RM1's waiting patient is not on RDE's worklist
    other = demo.episode_of("RM1", "closed")
    page.open(f"/ui/episodes/{other}")
    assert page.find("h1").text == "You cannot see this page"
    body = page.text
    for secret in (str(other), str(other)[:8], "Localdoc1", "RM1", "Norfolk", "Fenwright"):
        assert secret not in body
    assert_accessible(page)
    page.open(f"/ui/episodes/{demo.episode_of('RDE')}")  # its own trust's episode opens
    assert page.find("#responsible-now")


def test_a_form_posted_without_its_csrf_token_is_refused(page: Browser, demo: DemoHub) -> None:
    sign_in(page, demo, "governance")
    page.driver.execute_script("document.querySelectorAll('input[name=csrf_token]').forEach(e => e.remove())")
    page.click_button("Sign out")
    page.wait_for_path(lambda path: path == "/ui/sign-out")
    assert page.find("h1").text == "You cannot see this page"
    page.open("/ui/")
    assert page.path == "/ui/", "the refused sign-out did not end the session"


def test_sign_out_ends_the_session(page: Browser, demo: DemoHub) -> None:
    sign_in(page, demo, "ops")
    page.click_button("Sign out")
    page.wait_for_path(lambda path: path == "/ui/signed-out")
    assert page.find("h1").text == "You have signed out"
    assert_accessible(page)
    assert not [c for c in page.cookies() if c["name"] == "handover_session"]
    page.open("/ui/")
    page.wait_for_path(lambda path: path.startswith("/dev-idp/authorize"))  # sent to sign in again
    assert_accessible(page)


def test_the_session_cookie_is_httponly_and_strict(page: Browser, demo: DemoHub) -> None:
    sign_in(page, demo, "trust:RM1")
    cookie = next(c for c in page.cookies() if c["name"] == "handover_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/ui"
    assert cookie["secure"] is False  # plain HTTP in this test; Secure over TLS is checked at HTTP level
    assert page.driver.execute_script("return document.cookie") == ""  # scripts cannot read it


def test_an_idle_session_ends(network: Network, demo_database: str, tmp_path: Path) -> None:
    del tmp_path
    with demo_hub(network, demo_database, play=False, ui_idle_minutes=0.05) as idle_hub, browser_for(idle_hub) as page:
        sign_in(page, idle_hub, "governance")
        time.sleep(4)  # longer than the 3-second idle timeout
        page.open("/ui/")
        page.wait_for_path(lambda path: path.startswith("/dev-idp/authorize"))
