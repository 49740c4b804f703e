"""The staff pages over plain HTTP: who gets in (303 or 401 without a session), headers on every response,
CSRF on forms, role checks, and sign-in and sign-out audited."""

from __future__ import annotations

import aiohttp
import asyncpg

from tests.support.hub import RunningHub
from tests.ui.http_signin import BROWSER


async def test_without_a_session_browsers_are_sent_to_sign_in_and_others_get_401(ui_hub: RunningHub) -> None:
    for path in ("/ui/", "/ui/episodes/00000000-0000-0000-0000-000000000000"):
        async with ui_hub.session.get(f"{ui_hub.base_url}{path}", headers=BROWSER, allow_redirects=False) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == "/ui/sign-in"
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
