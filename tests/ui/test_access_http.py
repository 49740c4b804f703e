"""The staff pages over plain HTTP: who gets in (303 or 401 without a session), headers on every response,
CSRF on forms, role checks, and sign-in and sign-out audited."""

from __future__ import annotations

import html
import re
from urllib.parse import quote

import aiohttp
import asyncpg

from tests.support.hub import RunningHub
from tests.ui.http_signin import BROWSER, hidden_fields


async def test_without_a_session_browsers_are_sent_to_sign_in_and_others_get_401(ui_hub: RunningHub) -> None:
    episode = "/ui/episodes/00000000-0000-0000-0000-000000000000"
    for path, sign_in_at in (("/ui/", "/ui/sign-in"), (episode, f"/ui/sign-in?next={episode}")):
        async with ui_hub.session.get(f"{ui_hub.base_url}{path}", headers=BROWSER, allow_redirects=False) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == sign_in_at
        async with ui_hub.session.get(f"{ui_hub.base_url}{path}", allow_redirects=False) as resp:
            assert resp.status == 401
            assert (await resp.json())["issue"][0]["details"]["coding"][0]["code"] == "unauthenticated"


async def test_every_response_carries_the_security_headers(ui_hub: RunningHub) -> None:
    pages = (("/healthz", "*/*"), ("/fhir/metadata", "*/*"), ("/ui/sign-in", "text/html"), ("/nope", "*/*"))
    for path, accept in pages:
        async with ui_hub.session.get(
            f"{ui_hub.base_url}{path}", headers={"Accept": accept}, allow_redirects=False
        ) as resp:
            assert resp.headers["X-Content-Type-Options"] == "nosniff", path
            assert resp.headers["Cache-Control"] == "no-store", path
            assert resp.headers["Server"] == "Handover", path
            assert "Strict-Transport-Security" not in resp.headers  # plain HTTP here; TLS is tested below
    async with ui_hub.session.get(f"{ui_hub.base_url}/ui/static/nhsuk/nhsuk-frontend.min.css") as resp:
        assert resp.status == 200
        assert resp.headers["Cache-Control"].startswith("public")
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_html_pages_have_a_csp_without_inline_script(ui_hub: RunningHub) -> None:
    async with ui_hub.session.get(f"{ui_hub.base_url}/ui/signed-out", headers=BROWSER) as resp:
        assert resp.status == 200
        csp = resp.headers["Content-Security-Policy"]
        body = await resp.text()
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "<script>" not in body
    assert "<script " not in body.replace('<script type="module" src="/ui/static/handover.js"></script>', "")


async def test_sign_in_and_sign_out_are_audited_and_sign_out_ends_the_session(ui_hub: RunningHub, signed_in) -> None:
    governance = await signed_in("amara.okafor")
    async with governance.client.post(
        f"{ui_hub.base_url}/ui/sign-out", data={"csrf_token": governance.csrf_token}, allow_redirects=False
    ) as resp:
        assert resp.status == 303
        assert resp.headers["Location"] == "/ui/signed-out"
    async with governance.client.get(f"{ui_hub.base_url}/ui/", allow_redirects=False) as resp:
        assert resp.status == 303
    conn = await asyncpg.connect(ui_hub.dsn)
    try:
        rows = await conn.fetch("SELECT outcome, actor FROM audit_events WHERE event_type = 'staff-login' ORDER BY seq")
    finally:
        await conn.close()
    assert [(r["outcome"], r["actor"]) for r in rows] == [("signed-in", "amara.okafor"), ("signed-out", "amara.okafor")]


async def test_a_form_without_its_csrf_token_is_refused(ui_hub: RunningHub, signed_in) -> None:
    governance = await signed_in("amara.okafor")
    for data in ({}, {"csrf_token": "not-the-token"}):
        async with governance.client.post(f"{ui_hub.base_url}/ui/sign-out", data=data, allow_redirects=False) as resp:
            assert resp.status == 403
            assert "You cannot see this page" in await resp.text()
    async with governance.client.get(f"{ui_hub.base_url}/ui/", allow_redirects=False) as resp:
        assert resp.status == 200  # still signed in: the refused form changed nothing


async def test_the_session_cookie_is_httponly_and_samesite_strict(ui_hub: RunningHub) -> None:
    from tests.ui.http_signin import sign_in

    signed = await sign_in(ui_hub.base_url, "jo.whitfield")
    try:
        cookie = next(c for c in signed.client.cookie_jar if c.key == "handover_session")
        assert cookie["httponly"]
        assert cookie["samesite"] == "Strict"
        assert cookie["path"] == "/ui"
        assert not cookie["secure"]  # plain HTTP here
    finally:
        await signed.client.close()


async def test_a_sign_in_callback_not_started_in_this_browser_is_refused(ui_hub: RunningHub) -> None:
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), headers=BROWSER) as client,
        client.get(f"{ui_hub.base_url}/ui/auth/callback?code=x&state=y", allow_redirects=False) as resp,
    ):
        assert resp.status == 403


async def test_roles_are_checked_on_the_server(ui_hub: RunningHub, signed_in) -> None:
    ops = await signed_in("sam.patel")
    async with ops.client.get(f"{ui_hub.base_url}/ui/episodes/00000000-0000-0000-0000-000000000000") as resp:
        assert resp.status == 403
        assert "You cannot see this page" in await resp.text()
    async with ops.client.post(
        f"{ui_hub.base_url}/ui/search", data={"csrf_token": ops.csrf_token, "nhs_number": "9990000018"}
    ) as resp:
        assert resp.status == 403
    async with ops.client.get(f"{ui_hub.base_url}/ui/") as resp:
        assert resp.status == 200
        assert "never patients" in await resp.text()
    governance = await signed_in("amara.okafor")
    async with governance.client.get(f"{ui_hub.base_url}/ui/episodes/00000000-0000-0000-0000-000000000000") as resp:
        assert resp.status == 404
        assert "Page not found" in await resp.text()
    async with governance.client.get(f"{ui_hub.base_url}/ui/episodes/not-a-uuid") as resp:
        assert resp.status == 404


async def test_search_is_a_post_and_refuses_what_is_not_an_nhs_number(ui_hub: RunningHub, signed_in) -> None:
    governance = await signed_in("amara.okafor")
    async with governance.client.get(f"{ui_hub.base_url}/ui/search") as resp:
        assert resp.status == 405
    async with governance.client.post(
        f"{ui_hub.base_url}/ui/search", data={"csrf_token": governance.csrf_token, "nhs_number": "1234567890"}
    ) as resp:
        assert resp.status == 400
        page = await resp.text()
    assert "valid check digit" in page
    assert "1234567890" not in page  # the number typed is not echoed back
    async with governance.client.post(
        f"{ui_hub.base_url}/ui/search", data={"csrf_token": governance.csrf_token, "nhs_number": "999 000 0018"}
    ) as resp:
        assert resp.status == 200
        assert "No episode you may see" in await resp.text()


async def test_sessions_idle_past_the_timeout_are_deleted_at_the_next_sign_in(ui_hub: RunningHub, signed_in) -> None:
    await signed_in("amara.okafor")
    conn = await asyncpg.connect(ui_hub.dsn)
    try:
        await conn.execute("UPDATE ui_sessions SET last_seen_at = last_seen_at - interval '31 minutes'")
        await signed_in("jo.whitfield")
        subjects = [r["subject"] for r in await conn.fetch("SELECT subject FROM ui_sessions")]
    finally:
        await conn.close()
    assert subjects == ["jo.whitfield"]


async def test_the_worklist_is_paginated_and_filtered(ui_hub: RunningHub, signed_in) -> None:
    from tests.support.messages import referral

    for number in range(30):
        sender = "RM1" if number < 27 else "RDE"
        client = ui_hub.trust(sender)
        assert (await client.send(client.sign(referral(sender)))).accepted
    governance = await signed_in("amara.okafor")

    async def rows(query: str) -> tuple[int, str]:
        async with governance.client.get(f"{ui_hub.base_url}/ui/{query}") as resp:
            assert resp.status == 200
            page = await resp.text()
        return page.count('<tr class="nhsuk-table__row">'), page

    first, page = await rows("")
    assert first == 25
    assert "30 items need someone" in page
    assert 'href="/ui/?page=2"' in page
    second, _ = await rows("?page=2")
    assert second == 5
    only_rde, page = await rows("?trust=RDE")
    assert only_rde == 3
    assert "3 items" in page
    none_overdue, page = await rows("?overdue=yes")
    assert none_overdue == 0 and "Nothing needs you today" in page
    trust = await signed_in("priya.shah")  # trust:RDE sees only its own three
    async with trust.client.get(f"{ui_hub.base_url}/ui/?trust=RM1") as resp:
        assert (await resp.text()).count('<tr class="nhsuk-table__row">') == 3


async def _sign_in_from(ui_hub: RunningHub, first_asked: str) -> str:
    """Ask for `first_asked` without a session, sign in through the development provider, follow the sign-in's
    own redirects; the path the signed-in page then moves on to."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), headers=BROWSER) as client:
        async with client.get(f"{ui_hub.base_url}{first_asked}", allow_redirects=False) as resp:
            assert resp.status == 303
            sign_in_at = resp.headers["Location"]
        async with client.get(f"{ui_hub.base_url}{sign_in_at}", allow_redirects=False) as resp:
            authorize = resp.headers["Location"]
        async with client.get(authorize) as resp:
            fields = hidden_fields(await resp.text())
        async with client.post(f"{ui_hub.base_url}/dev-idp/authorize", data={**fields, "user": "amara.okafor"}) as resp:
            assert resp.status == 200
            page = await resp.text()
        found = re.search(r'<meta http-equiv="refresh" content="0;url=([^"]+)">', page)
        assert found is not None, "the signed-in page moves on by itself"
        target = html.unescape(found.group(1))
        async with client.get(f"{ui_hub.base_url}{target}", allow_redirects=False) as resp:
            assert resp.status == 200, target  # signed in now: the page itself, not sign-in again
        return target


async def test_signing_in_returns_to_the_page_first_asked_for(ui_hub: RunningHub) -> None:
    assert await _sign_in_from(ui_hub, "/ui/governance?year=2026") == "/ui/governance?year=2026"
    assert await _sign_in_from(ui_hub, "/ui/") == "/ui/"


async def test_sign_in_never_returns_to_another_site(ui_hub: RunningHub) -> None:
    for elsewhere in ("//evil.example/ui/", "https://evil.example/", "/ui//evil.example", "/ui/sign-in", "/elsewhere"):
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), headers=BROWSER) as client:
            url = f"{ui_hub.base_url}/ui/sign-in?next={quote(elsewhere, safe='')}"
            async with client.get(url, allow_redirects=False) as resp:
                assert resp.status == 303
                assert not [c for c in client.cookie_jar if c.key == "handover_return_to" and c.value], elsewhere
