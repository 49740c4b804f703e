"""The development provider's token endpoint refuses what a real provider refuses (wrong client secret, wrong
PKCE verifier, a code used twice, another redirect URI), and the relying party refuses a sign-in whose state or
nonce does not match; role claims map to the pages' roles; cookies are Secure and HSTS is sent over TLS."""

from __future__ import annotations

import base64
import hashlib
import ssl
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from service.identity.dev_idp import dev_client_secret
from service.identity.staff_roles import AmbiguousRole, role_from_claim
from service.ui.sessions import PUBLIC_URL, set_session_cookie
from tests.support.hub import Network, RunningHub, running_hub
from tests.ui.http_signin import BROWSER, hidden_fields


async def _code_for(hub: RunningHub, client: aiohttp.ClientSession, *, verifier: str, user: str) -> tuple[str, str]:
    """Ask the provider's authorize endpoint directly for a code (as the hub's relying party would)."""
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    redirect = f"{hub.base_url}/ui/auth/callback"
    params = {
        "response_type": "code",
        "client_id": "handover",
        "redirect_uri": redirect,
        "scope": "openid profile",
        "state": "s" * 20,
        "nonce": "n" * 20,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    async with client.get(f"{hub.base_url}/dev-idp/authorize", params=params) as resp:
        assert resp.status == 200
        fields = hidden_fields(await resp.text())
    async with client.post(
        f"{hub.base_url}/dev-idp/authorize", data={**fields, "user": user}, allow_redirects=False
    ) as resp:
        assert resp.status == 303
        location = resp.headers["Location"]
    assert location.startswith(redirect)
    return parse_qs(urlsplit(location).query)["code"][0], redirect


async def _token(hub: RunningHub, client: aiohttp.ClientSession, **form: str) -> tuple[int, dict[str, object]]:
    async with client.post(f"{hub.base_url}/dev-idp/token", data=form) as resp:
        return resp.status, await resp.json()


async def test_the_token_endpoint_checks_secret_pkce_redirect_and_single_use(ui_hub: RunningHub) -> None:
    secret = dev_client_secret(ui_hub.network.keys_dir)
    async with aiohttp.ClientSession(headers=BROWSER) as client:
        verifier = "v" * 50
        code, redirect = await _code_for(ui_hub, client, verifier=verifier, user="amara.okafor")
        good = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect,
            "code_verifier": verifier,
            "client_id": "handover",
            "client_secret": secret,
        }
        assert await _token(ui_hub, client, **{**good, "client_secret": "wrong"}) == (401, {"error": "invalid_client"})
        assert (await _token(ui_hub, client, **{**good, "code_verifier": "w" * 50}))[0] == 400
        assert (await _token(ui_hub, client, **{**good, "redirect_uri": redirect + "x"}))[0] == 400
        status, body = await _token(ui_hub, client, **good)
        assert status == 200
        assert body["token_type"] == "Bearer" and isinstance(body["id_token"], str)
        assert await _token(ui_hub, client, **good) == (400, {"error": "invalid_grant"})  # used once only


async def test_the_provider_refuses_a_foreign_redirect_uri_or_no_pkce(ui_hub: RunningHub) -> None:
    base = {
        "response_type": "code",
        "client_id": "handover",
        "redirect_uri": f"{ui_hub.base_url}/ui/auth/callback",
        "scope": "openid",
        "state": "s" * 20,
        "code_challenge": "c" * 43,
        "code_challenge_method": "S256",
    }
    for change in ({"redirect_uri": "https://evil.example/ui/auth/callback"}, {"code_challenge_method": "plain"}):
        async with ui_hub.session.get(f"{ui_hub.base_url}/dev-idp/authorize", params={**base, **change}) as resp:
            assert resp.status == 400


async def test_a_callback_with_another_state_than_this_browser_started_is_refused(ui_hub: RunningHub) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), headers=BROWSER) as client:
        async with client.get(f"{ui_hub.base_url}/ui/sign-in", allow_redirects=False) as resp:
            authorize = resp.headers["Location"]
        async with client.get(authorize) as resp:
            fields = hidden_fields(await resp.text())
        fields["state"] = "another-state-value-altogether"
        async with client.post(f"{ui_hub.base_url}/dev-idp/authorize", data={**fields, "user": "amara.okafor"}) as resp:
            assert resp.status == 403
            assert "did not start in this browser" in await resp.text()
        async with client.get(f"{ui_hub.base_url}/ui/", allow_redirects=False) as resp:
            assert resp.status == 303  # no session was opened


def test_role_claims_map_to_the_pages_roles() -> None:
    """Values that are not roles of ours are ignored; two different roles of ours are refused (AmbiguousRole)."""
    known = {"RM1", "RGT"}.__contains__
    assert role_from_claim(["governance"], known) == "governance"
    assert role_from_claim("smdt-coordinator", known) == "smdt-coordinator"
    assert role_from_claim(["nurse", "trust:RM1"], known) == "trust:RM1"
    assert role_from_claim(["trust:XYZ"], known) is None  # not a network participant
    assert role_from_claim(["admin", 7], known) is None
    assert role_from_claim(None, known) is None
    assert role_from_claim(["ops", "nurse", "ops"], known) == "ops"
    for ambiguous in (["trust:RM1", "governance"], ["governance", "trust:RM1"], ["trust:RM1", "trust:RGT"]):
        with pytest.raises(AmbiguousRole):
            role_from_claim(ambiguous, known)


def test_the_session_cookie_is_secure_and_host_prefixed_over_tls() -> None:
    cases = (  # (served over TLS, public URL) -> (cookie name, Secure, Path)
        (True, "http://127.0.0.1:8080", ("__Host-handover_session", True, "/")),
        (False, "https://handover.trust.example", ("__Host-handover_session", True, "/")),
        (False, "http://127.0.0.1:8080", ("handover_session", False, "/ui")),
    )
    for tls, public_url, (name, secure, path) in cases:
        app = web.Application()
        app[PUBLIC_URL] = public_url
        request = make_mocked_request(
            "GET", "/ui/auth/callback", app=app, sslcontext=ssl.create_default_context() if tls else None
        )
        response = web.Response()
        set_session_cookie(request, response, "t" * 43)
        [morsel] = response.cookies.values()
        assert (morsel.key, bool(morsel["secure"]), morsel["path"]) == (name, secure, path)
        assert morsel["httponly"] and morsel["samesite"] == "Strict" and not morsel["domain"]


async def test_hsts_over_tls(network: Network, database: str) -> None:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    async with running_hub(network, database, ssl_context=server, client_ssl=client, dev_idp=True) as hub:
        for path in ("/healthz", "/ui/signed-out"):
            async with hub.session.get(f"{hub.base_url}{path}", headers=BROWSER) as resp:
                assert resp.status == 200
                assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
                assert resp.headers["Cache-Control"] == "no-store"


async def _signed_in_page(hub: RunningHub, user: str) -> str:
    """The page the sign-in ends on (it moves on to /ui/ by itself in a browser)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), headers=BROWSER) as client:
        async with client.get(f"{hub.base_url}/ui/sign-in", allow_redirects=False) as resp:
            authorize = resp.headers["Location"]
        async with client.get(authorize) as resp:
            fields = hidden_fields(await resp.text())
        async with client.post(f"{hub.base_url}/dev-idp/authorize", data={**fields, "user": user}) as resp:
            assert resp.status == 200
            return await resp.text()


async def test_the_signed_in_page_leads_ops_to_the_operations_home_not_a_worklist(ui_hub: RunningHub) -> None:
    ops = await _signed_in_page(ui_hub, "sam.patel")
    assert "Continue to the operations home" in ops and "worklist" not in ops, "ops have no worklist"
    governance = await _signed_in_page(ui_hub, "amara.okafor")
    assert "Continue to your worklist" in governance
