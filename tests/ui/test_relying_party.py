"""The relying party refuses ID tokens a real provider must never have issued to us: signed by a key not in
the provider's JWKS, for another audience, from another issuer, expired, or with another nonce.

The provider here is a small real HTTP server on a local port (an edge we do not own), serving discovery, a
JWKS and a token endpoint whose ID token each test bends in one way."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from service.identity.keystore import generate_private_jwk
from service.identity.oidc_client import OidcRelyingParty, SignInRefused
from service.identity.signing import sign_compact_jwt
from tests.support.hub import free_port

SIGNING_KEY = generate_private_jwk()
OTHER_KEY = generate_private_jwk()
NONCE = "n" * 24


@asynccontextmanager
async def provider(bend: Callable[[dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]]) -> AsyncIterator[str]:
    """A provider whose token endpoint issues `bend(claims)` → (claims, signing key)."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"

    async def discovery(_: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": issuer,
                "authorization_endpoint": f"{issuer}/authorize",
                "token_endpoint": f"{issuer}/token",
                "jwks_uri": f"{issuer}/jwks",
                "id_token_signing_alg_values_supported": ["ES256"],
            }
        )

    async def jwks(_: web.Request) -> web.Response:
        public = {k: SIGNING_KEY[k] for k in ("kty", "crv", "x", "y", "kid", "alg", "use")}
        return web.json_response({"keys": [public]})

    async def token(_: web.Request) -> web.Response:
        now = int(time.time())
        claims = {"iss": issuer, "sub": "someone", "aud": "handover", "iat": now, "exp": now + 300, "nonce": NONCE}
        claims, key = bend(claims)
        return web.json_response(
            {"access_token": "a", "token_type": "Bearer", "id_token": sign_compact_jwt(claims, key)}
        )

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/jwks", jwks)
    app.router.add_post("/token", token)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield issuer
    finally:
        await runner.cleanup()


async def _complete(issuer: str) -> Any:
    party = OidcRelyingParty(issuer, "handover", "secret")
    return await party.complete(
        code="c", redirect_uri="http://127.0.0.1/ui/auth/callback", code_verifier="v" * 43, nonce=NONCE
    )


async def test_a_proper_id_token_signs_in() -> None:
    async with provider(lambda claims: (claims, SIGNING_KEY)) as issuer:
        staff = await _complete(issuer)
    assert staff.subject == "someone"


@pytest.mark.parametrize(
    "bend",
    [
        pytest.param(lambda c: (c, OTHER_KEY), id="signed-by-another-key"),
        pytest.param(lambda c: ({**c, "aud": "someone-else"}, SIGNING_KEY), id="another-audience"),
        pytest.param(lambda c: ({**c, "iss": "http://evil.example"}, SIGNING_KEY), id="another-issuer"),
        pytest.param(lambda c: ({**c, "exp": int(time.time()) - 3600}, SIGNING_KEY), id="expired"),
        pytest.param(lambda c: ({**c, "nonce": "x" * 24}, SIGNING_KEY), id="another-nonce"),
        pytest.param(lambda c: ({k: v for k, v in c.items() if k != "nonce"}, SIGNING_KEY), id="no-nonce"),
    ],
)
async def test_a_bent_id_token_is_refused(bend: Callable[[dict[str, Any]], tuple[dict[str, Any], Any]]) -> None:
    async with provider(bend) as issuer:
        with pytest.raises(SignInRefused) as refused:
            await _complete(issuer)
    assert refused.value.status == 401
