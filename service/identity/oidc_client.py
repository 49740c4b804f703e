"""The hub as an OpenID Connect relying party for staff sign-in: authorization code flow with PKCE (S256),
`state` and `nonce`, and the ID token checked for signature (the provider's JWKS found by discovery), issuer,
audience, expiry and nonce.

The protocol is Authlib's (its async OAuth 2 client and OpenID mixins, the same code its Starlette integration
uses), not ours: Authlib is maintained by the author of joserfc, which we already use for JWS, and verifies ID
tokens with joserfc. We keep only the glue: where the state lives (the caller stores it) and what a sign-in
yields (`SignedInStaff`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx2
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client import BaseApp
from authlib.integrations.base_client.async_app import AsyncOAuth2Mixin
from authlib.integrations.base_client.async_openid import AsyncOpenIDMixin
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc.errors import JoseError

from service.errors import Code, HandoverError

log = logging.getLogger("handover.identity.oidc")
SCOPE = "openid profile"


class _AuthlibApp(AsyncOAuth2Mixin, AsyncOpenIDMixin, BaseApp):  # type: ignore[misc]  # Authlib is untyped
    client_cls = AsyncOAuth2Client


@dataclass(frozen=True)
class AuthorizationRequest:
    """Where to send the browser, and what to keep (server side) until it comes back."""

    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class SignedInStaff:
    subject: str
    display_name: str
    claims: dict[str, Any]


class OidcRelyingParty:
    """Sign-in against the provider at `issuer` as client `client_id` (authenticated with `client_secret`)."""

    def __init__(self, issuer: str, client_id: str, client_secret: str | None) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self._app = _AuthlibApp(
            None,
            client_id=client_id,
            client_secret=client_secret,
            server_metadata_url=f"{self.issuer}/.well-known/openid-configuration",
            client_kwargs={"scope": SCOPE, "code_challenge_method": "S256", "timeout": 10.0},
        )

    async def authorization(self, redirect_uri: str) -> AuthorizationRequest:
        """A fresh authorization request (new state, nonce and PKCE verifier)."""
        try:
            created = await self._app.create_authorization_url(redirect_uri)
            await self._checked_metadata()
        except (httpx2.HTTPError, AuthlibBaseError, ValueError, KeyError) as err:
            log.warning("identity provider unreachable", extra={"code": type(err).__name__})
            raise HandoverError(Code.UNAVAILABLE, "The sign-in service cannot be reached; try again shortly") from None
        return AuthorizationRequest(created["url"], created["state"], created["nonce"], created["code_verifier"])

    async def complete(self, *, code: str, redirect_uri: str, code_verifier: str, nonce: str) -> SignedInStaff:
        """Exchange the code and check the ID token; 401 `unauthenticated` if anything does not hold."""
        try:
            token = await self._app.fetch_access_token(
                redirect_uri=redirect_uri, code=code, code_verifier=code_verifier
            )
            metadata = await self._checked_metadata()
            claims = await self._app.parse_id_token(
                token,
                nonce,
                claims_options={
                    "iss": {"essential": True, "value": metadata["issuer"]},
                    "aud": {"essential": True, "value": self.client_id},
                    "exp": {"essential": True},
                },
            )
        except (httpx2.HTTPError, AuthlibBaseError, JoseError, ValueError, KeyError, TypeError) as err:
            log.warning("staff sign-in refused", extra={"code": type(err).__name__})
            raise HandoverError(Code.UNAUTHENTICATED, "The sign-in could not be completed") from None
        if claims is None or not isinstance(claims.get("sub"), str):
            raise HandoverError(Code.UNAUTHENTICATED, "The sign-in could not be completed")
        name = claims.get("name") or claims.get("preferred_username") or claims["sub"]
        return SignedInStaff(str(claims["sub"]), str(name)[:200], dict(claims))

    async def _checked_metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = await self._app.load_server_metadata()
        if str(metadata.get("issuer", "")).rstrip("/") != self.issuer:
            raise ValueError("the discovery document names another issuer")
        return metadata
