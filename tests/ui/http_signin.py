"""Signing in to the staff pages without a browser: the real OIDC redirect flow against the development provider,
followed by hand with an aiohttp client (its own cookie jar), for the HTTP-level tests."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

import aiohttp

BROWSER = {"Accept": "text/html,application/xhtml+xml"}
_HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')


@dataclass
class SignedIn:
    """A client session holding a staff session cookie, and that session's CSRF token."""

    client: aiohttp.ClientSession
    csrf_token: str


def hidden_fields(page: str) -> dict[str, str]:
    return {name: html.unescape(value) for name, value in _HIDDEN.findall(page)}


async def sign_in(base_url: str, subject: str) -> SignedIn:
    """A new client signed in as the development user `subject` (e.g. "amara.okafor")."""
    client = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), headers=BROWSER)
    try:
        async with client.get(f"{base_url}/ui/sign-in", allow_redirects=False) as resp:
            assert resp.status == 303, resp.status
            authorize = resp.headers["Location"]
        async with client.get(authorize) as resp:
            assert resp.status == 200, await resp.text()
            fields = hidden_fields(await resp.text())
        async with client.post(f"{base_url}/dev-idp/authorize", data={**fields, "user": subject}) as resp:
            assert resp.status == 200, await resp.text()
        async with client.get(f"{base_url}/ui/") as resp:
            assert resp.status == 200, resp.status
            token = hidden_fields(await resp.text())["csrf_token"]
    except BaseException:
        await client.close()
        raise
    return SignedIn(client, token)
