"""The governance, audit, payload and deliveries pages in real headless Chromium, each flow through the real
OIDC sign-in: governance reads a payload only after giving a reason and finds the read on the audit page, runs
"verify now" and sees it pass; ops delivers a dead letter again. axe-core finds no serious or critical
violation on any of them."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.support.ui import WebDriverWait

from adapters.trust_client import TrustClient
from tests.support.hub import Network
from tests.support.messages import referral
from tests.ui.browser import Browser, assert_accessible, browser_for, sign_in
from tests.ui.demo_hub import DemoHub, demo_hub
from tests.ui.page_paths import first_referral

REASON = "Clinical incident review 2026-117: what the SMDT was told"


def wait_for_text(page: Browser, css: str, text: str, timeout: float = 60) -> None:
    # The element found may be replaced by the next page before its text is read: look again, as for a missing one.
    waiting = WebDriverWait(page.driver, timeout, ignored_exceptions=(StaleElementReferenceException,))
    waiting.until(lambda _: text in page.find(css).text)


def test_governance_reads_a_payload_only_after_giving_a_reason_and_the_read_is_on_the_audit_page(
    page: Browser, demo: DemoHub
) -> None:
    sign_in(page, demo, "governance")
    episode_id, message_id = first_referral(demo)
    page.open(f"/ui/episodes/{episode_id}")
    link = page.find(f"a[href='/ui/episodes/{episode_id}/messages/{message_id}']")
    link.click()
    page.wait_for_path(lambda path: path.endswith(f"/messages/{message_id}"))
    assert page.find("h1").text == "Why do you need to read this message?"
    assert "Patient" not in page.text and "NHS number" not in page.text, "no content before a reason"
    assert_accessible(page)

    page.click_button("Read the message")  # no reason given
    WebDriverWait(page.driver, 15).until(lambda _: page.find_all(".nhsuk-error-summary"))
    assert "There is a problem" in page.find(".nhsuk-error-summary").text
    assert "NHS number" not in page.text
    assert_accessible(page)

    page.find("#reason").send_keys(REASON)
    page.click_button("Read the message")
    wait_for_text(page, "h1", "Referral to the specialist MDT")
    assert "NHS number" in page.find("#patient").text
    assert "Secondary malignant neoplasm of liver (94381002)" in page.text
    assert_accessible(page)

    page.find("a.nhsuk-header__navigation-link[href='/ui/audit']").click()
    page.wait_for_path(lambda path: path == "/ui/audit")
    reads = page.find("#payload-reads").text
    assert REASON in reads and "Dr Amara Okafor" in reads  # the reader by name (issue 25)
    assert any(message_id in (a.get_attribute("href") or "") for a in page.find_all("#payload-reads a"))
    assert_accessible(page)


def test_governance_runs_verify_now_and_sees_it_pass(page: Browser, demo: DemoHub) -> None:
    sign_in(page, demo, "governance")
    page.open("/ui/audit")
    assert page.find("#checkpoint")
    assert "signature verified" in page.find("#checkpoint").text
    page.click_button("Verify now")
    page.wait_for_path(lambda path: path.startswith("/ui/audit/verify/"))
    assert_accessible(page)  # the progress page (or the result, if it was already done)
    wait_for_text(page, "#verify-status", "Passed")
    assert_accessible(page)
    page.open("/ui/audit")
    assert "Passed" in page.find("#verify-runs").text


def test_governance_summary_page_is_accessible_and_offers_the_csv(page: Browser, demo: DemoHub) -> None:
    sign_in(page, demo, "governance")
    page.find("a.nhsuk-header__navigation-link[href='/ui/governance']").click()
    page.wait_for_path(lambda path: path == "/ui/governance")
    assert page.find_all("figure.handover-chart svg[role='img']")
    assert page.find("#trust-table tbody tr")
    assert page.find("a[href='/ui/governance.csv']")
    assert_accessible(page)


class _RefusingEpr(BaseHTTPRequestHandler):
    """A recipient's endpoint at the network edge: refuses (422) until `accepting` is set, then accepts."""

    accepting = threading.Event()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200 if self.accepting.is_set() else 422)
        self.send_header("Content-Type", "application/fhir+json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def refusing_epr() -> Iterator[tuple[str, threading.Event]]:
    _RefusingEpr.accepting = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RefusingEpr)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/fhir", _RefusingEpr.accepting
    finally:
        server.shutdown()
        thread.join(5)


@pytest.fixture
def pushing_hub(
    network: Network, database: str, tmp_path: Path, refusing_epr: tuple[str, threading.Event]
) -> Iterator[DemoHub]:
    """A hub whose centre (RGT) is pushed to at the refusing endpoint; no scenario played."""

    def point_rgt(doc: dict[str, Any]) -> None:
        doc["participants"]["RGT"]["endpoint"] = refusing_epr[0]

    with demo_hub(network.edited(tmp_path / "net", point_rgt), database, play=False, relay_poll_seconds=0.1) as hub:
        yield hub


async def _send_referral(hub: DemoHub, network: Network) -> None:
    async with aiohttp.ClientSession() as session:
        client = TrustClient(session, hub.base_url, "RM1", network.private_key("RM1"), network.registry)
        result = await client.send(client.sign(referral("RM1")))
        assert result.accepted


def test_ops_delivers_a_dead_letter_again(
    pushing_hub: DemoHub, network: Network, refusing_epr: tuple[str, threading.Event]
) -> None:
    asyncio.run(_send_referral(pushing_hub, network))
    with browser_for(pushing_hub) as page:
        sign_in(page, pushing_hub, "ops")
        deadline = time.monotonic() + 20
        while True:
            page.open("/ui/deliveries")
            if page.find_all("#dead-letters"):
                break
            assert time.monotonic() < deadline, "the refused message was not dead-lettered"
            time.sleep(0.3)
        dead = page.find("#dead-letters").text
        assert "recipient-refused" in dead and "HTTP 422" in dead and "sent" in dead  # its non-delivery report
        assert_accessible(page)
        refusing_epr[1].set()  # the recipient fixed their system
        page.click_button("Deliver again")
        notice = page.wait_for("#notice")  # the page posts back to /ui/deliveries: its path is no sign of the answer
        assert page.path == "/ui/deliveries"
        assert "back in its queue" in notice.text
        assert_accessible(page)
        deadline = time.monotonic() + 20
        while True:
            page.open("/ui/deliveries")
            if page.find_all("#no-dead-letters") and "Closed" in page.find("#recipients").text:
                break
            assert time.monotonic() < deadline, "the re-queued message was not delivered"
            time.sleep(0.3)
