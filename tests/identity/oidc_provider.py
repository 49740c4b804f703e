"""An OpenID Connect provider of our own for the hub to sign in against, with misbehaviour to order.

A real aiohttp server on 127.0.0.1: discovery, JWKS, an authorize endpoint that approves at once (as a provider
with single sign-on does, so a hub that answers a refusal with "sign in again" loops) and a token endpoint that
checks PKCE (S256) and HTTP Basic client authentication before it issues an RS256 ID token. Every answer can be
bent through `Behaviour`; what the hub sent is kept in `Seen`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from tests.support.hub import free_port

CLIENT_ID = "handover"
CLIENT_SECRET = "provider-test-secret"
KEY_A = RSAKey.generate_key(2048, parameters={"kid": "key-a", "use": "sig"})
KEY_B = RSAKey.generate_key(2048, parameters={"kid": "key-b", "use": "sig"})


@dataclass
class Behaviour:
    """What the provider does; each test changes what it needs (a fresh one per test)."""

    subject: str = "dr.provider.test"
    roles: Any = field(default_factory=lambda: ["governance"])
    claims: dict[str, Any] = field(default_factory=dict)  # merged over the usual ID token claims
    alg: str = "RS256"  # "none": an unsigned token
    signing_key: RSAKey = field(default_factory=lambda: KEY_A)
    published_keys: list[RSAKey] = field(default_factory=lambda: [KEY_A, KEY_B])
    jwks_cache_control: str | None = None
    discovery_extra: dict[str, Any] = field(default_factory=dict)  # merged over the discovery document
    token_extra: dict[str, Any] = field(default_factory=dict)  # merged over the token response
    drip_seconds: float | None = None  # send the token response one byte at a time, this far apart
    authorize_error: str | None = None  # answer the authorization request with this OAuth error instead of a code
    hmac_with_public_key: bool = False  # sign HS256 with the RSA public key's PEM as the secret (alg confusion)


@dataclass
class Seen:
    """What the hub sent the provider."""

    authorize: list[dict[str, str]] = field(default_factory=list)
    token: list[dict[str, str]] = field(default_factory=list)
    jwks_fetches: int = 0


@dataclass
class Provider:
    issuer: str
    behaviour: Behaviour
    seen: Seen
    _codes: dict[str, dict[str, str]] = field(default_factory=dict)

    def reset(self) -> None:
        self.behaviour, self.seen = Behaviour(), Seen()
        self._codes.clear()


def unsigned(claims: dict[str, Any]) -> str:
    """An `alg: none` JWS (empty signature)."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _id_token(provider: Provider, nonce: str) -> str:
    bent = provider.behaviour
    now = int(time.time())
    claims = {
        "iss": provider.issuer,
        "sub": bent.subject,
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 300,
        "nonce": nonce,
        "name": "Dr Provider Test",
        "roles": bent.roles,
    } | bent.claims
    if bent.alg == "none":
        return unsigned(claims)
    if bent.hmac_with_public_key:
        pem = bent.signing_key.as_pem(private=False)
        header = {"alg": "HS256", "kid": bent.signing_key.kid}
        return jwt.encode(header, claims, OctKey.import_key(pem), algorithms=["HS256"])
    header = {"alg": bent.alg, "kid": bent.signing_key.kid}
    return jwt.encode(header, claims, bent.signing_key)


def _app(provider: Provider) -> web.Application:
    async def discovery(_: web.Request) -> web.Response:
        issuer = provider.issuer
        document = {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
            "jwks_uri": f"{issuer}/jwks",
            "response_types_supported": ["code"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
        } | provider.behaviour.discovery_extra
        return web.json_response(document)

    async def jwks(_: web.Request) -> web.Response:
        provider.seen.jwks_fetches += 1
        keys = [key.as_dict(private=False) for key in provider.behaviour.published_keys]
        headers = {"Cache-Control": provider.behaviour.jwks_cache_control or ""}
        return web.json_response({"keys": keys}, headers={k: v for k, v in headers.items() if v})

    async def authorize(request: web.Request) -> web.Response:
        query = dict(request.rel_url.query)
        provider.seen.authorize.append(query)
        code = secrets.token_urlsafe(16)
        provider._codes[code] = query
        back = {"code": code, "state": query.get("state", "")}
        if provider.behaviour.authorize_error is not None:
            back = {"error": provider.behaviour.authorize_error, "state": query.get("state", "")}
        raise web.HTTPFound(f"{query.get('redirect_uri', '')}?{urlencode(back)}")

    async def token(request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()}
        provider.seen.token.append(form)
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {basic}":
            return web.json_response({"error": "invalid_client"}, status=401)
        asked = provider._codes.pop(form.get("code", ""), None)
        if asked is None:
            return web.json_response({"error": "invalid_grant"}, status=400)
        if asked.get("code_challenge_method") == "S256":
            digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != asked.get("code_challenge"):
                return web.json_response({"error": "invalid_grant"}, status=400)
        answer = {
            "access_token": secrets.token_urlsafe(16),
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": _id_token(provider, asked.get("nonce", "")),
        } | provider.behaviour.token_extra
        body = json.dumps(answer).replace('"__raw_1e999__"', "1e999").encode()
        if provider.behaviour.drip_seconds is None:
            return web.Response(body=body, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = len(body)
        await response.prepare(request)
        for index in range(len(body)):
            await response.write(body[index : index + 1])
            await asyncio.sleep(provider.behaviour.drip_seconds)
        return response

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/jwks", jwks)
    app.router.add_get("/authorize", authorize)
    app.router.add_post("/token", token)
    return app


RAW_1E999 = "__raw_1e999__"  # put this in `token_extra` to send the bare JSON number 1e999


@asynccontextmanager
async def running_provider() -> AsyncIterator[Provider]:
    port = free_port()
    provider = Provider(f"http://127.0.0.1:{port}", Behaviour(), Seen())
    runner = web.AppRunner(_app(provider), shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield provider
    finally:
        await runner.cleanup()
