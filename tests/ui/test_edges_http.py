"""The edges of the staff pages over HTTP (issue 25, item 7): a reason must be words; `/` sends browsers to /ui/;
requests the HTTP parser refuses (a URL or a header over 8 KB) get a branded page that echoes nothing and names
no versions; a missing static file answers with a body; the profile pages sit inside the staff layout with their
markdown rendered; ops has a home of its own."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import pytest
from yarl import URL

from service.governance import reason_problem
from tests.support.hub import RunningHub
from tests.ui.http_signin import BROWSER, SignedIn
from tests.ui.test_pages_http import GOVERNANCE, OPS, episode_and_message, page, post, send_referral

SignIn = Callable[[str], Awaitable[SignedIn]]


@pytest.mark.parametrize(
    ("reason", "problem"),
    [
        ("Incident review 2026-114", None),
        ("coroner's request", None),
        ("a" * 500, "too-few-words"),
        ("review " + "x" * 61, "word-too-long"),
        ("2026-114 2026-115", "too-few-words"),
        ("too short", "length"),
        ("Incident\nreview 2026", "control-character"),
    ],
)
def test_a_reason_is_words_a_person_can_read(reason: str, problem: str | None) -> None:
    assert reason_problem(reason) == problem


async def test_an_unbroken_reason_is_refused_on_the_page_and_by_the_api(ui_hub: RunningHub, signed_in: SignIn) -> None:
    """A 500-character reason without a space was accepted and made the audit page 5,252 px wide for everyone."""
    await send_referral(ui_hub)
    episode_id, message_id = await episode_and_message(ui_hub.dsn)
    governance = await signed_in(GOVERNANCE)
    url = f"{ui_hub.base_url}/ui/episodes/{episode_id}/messages/{message_id}"
    status, body, _ = await post(governance, url, {"reason": "x" * 500})
    assert status == 400 and "at least 2 words" in body
    api = f"{ui_hub.base_url}/governance/messages/{message_id}"
    headers = {"Authorization": f"Bearer {ui_hub.staff_token('governance')}"}
    async with ui_hub.session.get(api, params={"reason": "Review " + "y" * 200}, headers=headers) as resp:
        assert resp.status == 400
        assert "none longer than 60" in json.dumps(await resp.json())
    status, _, _ = await post(governance, url, {"reason": "Incident review 2026-114"})
    assert status == 200
    status, audit = await page(governance, f"{ui_hub.base_url}/ui/audit")
    assert status == 200 and 'class="handover-wrap">Incident review 2026-114' in audit, "shown where it wraps"


async def test_the_front_door_sends_browsers_to_the_staff_pages(ui_hub: RunningHub) -> None:
    async with ui_hub.session.get(ui_hub.base_url + "/", headers=BROWSER, allow_redirects=False) as resp:
        assert resp.status == 302 and resp.headers["Location"] == "/ui/"
    async with ui_hub.session.get(ui_hub.base_url + "/", allow_redirects=False) as resp:
        assert resp.status == 404, "an API client keeps the OperationOutcome it had"
        assert (await resp.json(content_type=None))["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("where", ["url", "header"])
async def test_a_request_too_long_to_read_gets_a_branded_page_that_echoes_nothing(
    ui_hub: RunningHub, where: str
) -> None:
    """aiohttp answered a URL over 8 KB with plain text echoing its first 100 bytes, `Server: Python/3.11
    aiohttp/3.14.5`."""
    filler = "q7" * 4600
    url = URL(f"{ui_hub.base_url}/ui/{filler if where == 'url' else ''}", encoded=True)
    headers = {**BROWSER, **({"X-Filler": filler} if where == "header" else {})}
    async with ui_hub.session.get(url, headers=headers, allow_redirects=False) as resp:
        body = await resp.text()
        assert 400 <= resp.status < 500
        assert resp.headers["Server"] == "Handover", "no versions"
        assert resp.content_type == "text/html"
        assert "Sorry, the hub could not read that request" in body and "nhsuk-header" in body
        assert "q7q7" not in body and "aiohttp" not in body
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_a_missing_static_file_answers_with_a_body(ui_hub: RunningHub) -> None:
    missing = ui_hub.base_url + "/ui/static/no-such-file.css"
    async with ui_hub.session.get(missing) as resp:
        assert resp.status == 404 and (await resp.text()).strip() == "Not Found"
    async with ui_hub.session.get(missing, headers=BROWSER) as resp:
        assert resp.status == 404 and "Page not found" in await resp.text()
    async with ui_hub.session.get(ui_hub.base_url + "/ui/static/../templates/layout.html") as resp:
        assert resp.status == 404
    async with ui_hub.session.get(ui_hub.base_url + "/ui/static/handover.css") as resp:
        assert resp.status == 200, "a file that is there is served as before"


async def test_the_profile_pages_are_inside_the_staff_layout_with_markdown_rendered(
    ui_hub: RunningHub, signed_in: SignIn
) -> None:
    someone = await signed_in(OPS)
    status, body = await page(someone, ui_hub.base_url + "/ui/profiles/handover-messageheader-referral")
    assert status == 200
    assert "Sign out</button>" in body and 'aria-label="Menu"' in body, "the staff header, navigation, sign-out"
    assert "<code>referral</code>" in body and "`referral`" not in body, "markdown rendered, no literal backticks"
    status, index = await page(someone, ui_hub.base_url + "/ui/profiles")
    assert status == 200 and "Handover messages and profiles" in index and 'href="/ui/profiles/message-' in index
    status, _ = await page(someone, ui_hub.base_url + "/ui/profiles/no-such-page")
    assert status == 404


async def test_ops_has_a_home_of_its_own(ui_hub: RunningHub, signed_in: SignIn) -> None:
    ops = await signed_in(OPS)
    status, body = await page(ops, ui_hub.base_url + "/ui/")
    assert status == 200
    assert "<h1>Operations</h1>" in body
    for part in ('id="ops-waiting"', 'id="ops-dead-letters"', 'href="/metrics"', 'href="/healthz"', 'href="/readyz"'):
        assert part in body, part
    assert "worklist" not in body.lower()
    status, refused = await page(ops, ui_hub.base_url + "/ui/governance")
    assert status == 403 and "Go to the operations page" in refused and "worklist" not in refused.lower()
