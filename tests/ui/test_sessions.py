"""Staff page sessions (issue 25 item 8, CONTRACT.md section 9): signing in ends the browser's earlier session;
a session ends after HANDOVER_UI_MAX_SESSION_HOURS whatever its activity; over TLS (here: through a trusted
proxy) the cookie is `__Host-handover_session` with `Path=/` and Secure; a page states an action's outcome only
when the session performed it; sign-in starts are limited per client and in total; the OIDC `redirect_uri`
comes from HANDOVER_PUBLIC_URL, not the Host header; `X-Forwarded-*` is believed only from trusted proxies."""

from __future__ import annotations

from http.cookies import SimpleCookie
from ipaddress import ip_network
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import asyncpg

from service.http.forwarded import client_address
from service.ui.state import SESSION_STORE
from tests.identity.oidc_provider import CLIENT_SECRET, running_provider
from tests.support.hub import Network, RunningHub, running_hub
from tests.ui.http_signin import BROWSER, hidden_fields, sign_in

LOCAL = (ip_network("127.0.0.1/32"),)


async def _count(dsn: str, sql: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def _cookie_after_sign_in(hub: RunningHub, headers: dict[str, str]) -> SimpleCookie:
    """The Set-Cookie of a sign-in's callback, the flow walked by hand (cookies passed by hand too, since a
    Secure cookie is not sent back over this plain-HTTP test connection)."""
    async with aiohttp.ClientSession(headers={**BROWSER, **headers}) as client:
        async with client.get(f"{hub.base_url}/ui/sign-in", allow_redirects=False) as resp:
            authorize, started = resp.headers["Location"], SimpleCookie(resp.headers.getone("Set-Cookie"))
        async with client.get(authorize) as resp:
            fields = hidden_fields(await resp.text())
        async with client.post(
            f"{hub.base_url}/dev-idp/authorize", data={**fields, "user": "sam.patel"}, allow_redirects=False
        ) as resp:
            callback = resp.headers["Location"]
        cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in started.items())
        async with client.get(callback, headers={"Cookie": cookie}, allow_redirects=False) as resp:
            assert resp.status == 200, await resp.text()
            return SimpleCookie("\n".join(resp.headers.getall("Set-Cookie")))


async def test_over_tls_through_a_trusted_proxy_the_cookie_is_host_prefixed(network: Network, database: str) -> None:
    async with running_hub(network, database, dev_idp=True, trusted_proxies=LOCAL) as hub:
        cookies = await _cookie_after_sign_in(hub, {"X-Forwarded-Proto": "https"})
        session = cookies["__Host-handover_session"]
        assert session["secure"] and session["httponly"] and session["path"] == "/"
        assert session["samesite"] == "Strict" and not session["domain"]
        assert "handover_session" not in cookies
        async with hub.session.get(f"{hub.base_url}/healthz", headers={"X-Forwarded-Proto": "https"}) as resp:
            assert resp.headers["Strict-Transport-Security"].startswith("max-age=")


async def test_x_forwarded_proto_from_an_untrusted_peer_is_ignored(ui_hub: RunningHub) -> None:
    cookies = await _cookie_after_sign_in(ui_hub, {"X-Forwarded-Proto": "https"})
    assert "__Host-handover_session" not in cookies
    session = cookies["handover_session"]
    assert not session["secure"] and session["path"] == "/ui"


def test_the_client_address_is_read_from_the_right_of_x_forwarded_for() -> None:
    proxies = (ip_network("10.0.0.0/8"),)
    assert client_address("192.0.2.7", "203.0.113.9", proxies) == "192.0.2.7"  # not a proxy: header ignored
    assert client_address("10.0.0.2", "203.0.113.9", proxies) == "203.0.113.9"
    assert client_address("10.0.0.2", "6.6.6.6, 203.0.113.9, 10.0.0.3", proxies) == "203.0.113.9"  # spoof ignored
    assert client_address("10.0.0.2", "", proxies) == "10.0.0.2"
    assert client_address("10.0.0.2", "not-an-address", proxies) == "10.0.0.2"


async def test_signing_in_again_ends_the_earlier_session_of_that_browser(ui_hub: RunningHub) -> None:
    signed = await sign_in(ui_hub.base_url, "amara.okafor")
    try:
        first = next(c.value for c in signed.client.cookie_jar if c.key == "handover_session")
        async with signed.client.get(f"{ui_hub.base_url}/ui/sign-in") as resp:  # the same browser, again
            fields = hidden_fields(await resp.text())
        async with signed.client.post(f"{ui_hub.base_url}/dev-idp/authorize", data={**fields, "user": "sam.patel"}):
            pass
        second = next(c.value for c in signed.client.cookie_jar if c.key == "handover_session")
    finally:
        await signed.client.close()
    assert first != second
    for token, still_live in ((first, False), (second, True)):
        async with ui_hub.session.get(
            f"{ui_hub.base_url}/ui/", headers={**BROWSER, "Cookie": f"handover_session={token}"}, allow_redirects=False
        ) as resp:
            assert (resp.status == 200) is still_live, resp.status


async def test_a_session_ends_after_its_absolute_lifetime_whatever_its_activity(ui_hub: RunningHub) -> None:
    signed = await sign_in(ui_hub.base_url, "amara.okafor")
    try:
        conn = await asyncpg.connect(ui_hub.dsn)
        try:  # opened 12 h 1 min ago, active a moment ago
            await conn.execute("UPDATE ui_sessions SET created_at = now() - interval '12 hours 1 minute'")
        finally:
            await conn.close()
        async with signed.client.get(f"{ui_hub.base_url}/ui/", allow_redirects=False) as resp:
            assert resp.status == 303
    finally:
        await signed.client.close()


async def test_a_notice_is_never_taken_from_the_query_string(ui_hub: RunningHub) -> None:
    ops = await sign_in(ui_hub.base_url, "sam.patel")
    try:
        crafted = "00000000-0000-0000-0000-000000000000"
        async with ops.client.get(f"{ui_hub.base_url}/ui/deliveries?requeued={crafted}") as resp:
            assert resp.status == 200
            page = await resp.text()
    finally:
        await ops.client.close()
    assert crafted not in page and "back in its queue" not in page


async def test_sign_in_starts_are_limited_per_client_and_in_total(network: Network, database: str) -> None:
    async def start(hub: RunningHub, client: str) -> tuple[int, str]:
        headers = {**BROWSER, "X-Forwarded-For": client}
        async with hub.session.get(f"{hub.base_url}/ui/sign-in", headers=headers, allow_redirects=False) as resp:
            return resp.status, await resp.text()

    async with running_hub(
        network, database, dev_idp=True, trusted_proxies=LOCAL, ui_sign_in_starts_per_minute=3
    ) as hub:
        assert [(await start(hub, "203.0.113.9"))[0] for _ in range(3)] == [303, 303, 303]
        status, page = await start(hub, "203.0.113.9")
        assert status == 429 and "Too many sign-ins were started from your address" in page
        assert (await start(hub, "198.51.100.4"))[0] == 303  # another client has its own allowance
        assert await _count(database, "SELECT count(*) FROM ui_sign_in_attempts") == 4
        hub.app[SESSION_STORE].max_pending_sign_ins = 4  # the bound across all clients
        status, page = await start(hub, "192.0.2.1")
        assert status == 503 and "too many sign-ins in progress" in page
        assert await _count(database, "SELECT count(*) FROM ui_sign_in_attempts") == 4


async def test_the_redirect_uri_comes_from_the_public_url_not_the_host_header(network: Network, database: str) -> None:
    public = "https://handover.trust.example"
    async with (
        running_provider() as provider,
        running_hub(
            network, database, oidc_issuer=provider.issuer, oidc_client_secret=CLIENT_SECRET, public_url=public
        ) as hub,
    ):
        headers: dict[str, Any] = {**BROWSER, "Host": "evil.example"}
        async with hub.session.get(f"{hub.base_url}/ui/sign-in", headers=headers, allow_redirects=False) as resp:
            assert resp.status == 303
            asked = parse_qs(urlsplit(resp.headers["Location"]).query)
            secure_sign_in_cookie = "Secure" in resp.headers["Set-Cookie"]
    assert asked["redirect_uri"] == [f"{public}/ui/auth/callback"]
    assert secure_sign_in_cookie  # the public URL is https: the browser is on TLS whatever this hop was
