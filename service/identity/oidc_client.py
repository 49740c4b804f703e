"""The hub as an OpenID Connect relying party for staff sign-in: authorization code flow with PKCE (S256),
`state` and `nonce`, and the ID token checked for signature (the provider's JWKS), algorithm, issuer, audience,
expiry, nonce and subject.

The protocol pieces are Authlib's (its OAuth 2 client builds the authorization URL and PKCE challenge, sends the
token request with HTTP Basic client authentication, and its `CodeIDToken` checks the claims) and joserfc's (the
JWS). The rest is ours, because a provider must not be able to steer it:
- the client's settings (PKCE method S256, scope, timeouts, client authentication) are fixed here; the provider's
  discovery document is read through an allow-list (`oidc_documents`), never copied into the client;
- the accepted signature algorithms are the configured ones (HANDOVER_OIDC_ALGORITHMS; asymmetric only), never
  those the discovery document lists, so `alg: none` and HMAC-with-the-public-key cannot pass;
- every exchange with the provider runs under one overall deadline (HANDOVER_OIDC_TIMEOUT_SECONDS), so an
  endpoint that drips its answer cannot hold a sign-in open;
- a `sub` that is empty or longer than 255 characters (the OIDC limit) is refused.
Every refusal is a `SignInRefused` carrying a sentence for the person signing in (never the token's content).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx2
from authlib.common.errors import AuthlibBaseError
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jws import JWSRegistry

from service.identity.oidc_documents import ProviderDocumentError, ProviderDocuments

DEFAULT_OIDC_ALGORITHMS = ("RS256", "PS256", "ES256")  # HANDOVER_OIDC_ALGORITHMS' default (service/config.py)

log = logging.getLogger("handover.identity.oidc")
SCOPE = "openid profile"
MAX_SUBJECT_LENGTH = 255  # OpenID Connect Core 1.0, section 2: `sub` is at most 255 ASCII characters
LEEWAY_SECONDS = 120
_PROVIDER_FAULTS = (httpx2.HTTPError, AuthlibBaseError, ProviderDocumentError, ValueError, KeyError, TypeError)
_TOKEN_FAULTS = (*_PROVIDER_FAULTS, JoseError, ArithmeticError)


class SignInRefused(Exception):  # noqa: N818 - a refusal, not a fault
    """The sign-in did not complete; `reason` is said to the person, `kind` is logged and audited."""

    def __init__(self, kind: str, reason: str, *, status: int = 401) -> None:
        super().__init__(reason)
        self.kind, self.reason, self.status = kind, reason, status


UNREACHABLE = "The sign-in service cannot be reached; try again shortly."
NOT_IN_TIME = "The sign-in service did not answer in time; try again shortly."
UNCHECKABLE = "The sign-in service's answer could not be checked, so it was not trusted."
NO_SUBJECT = "The sign-in service sent no usable account identifier."


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

    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str | None,
        *,
        algorithms: Sequence[str] = DEFAULT_OIDC_ALGORITHMS,
        timeout_seconds: float = 10.0,
        keys_max_age_seconds: float = 3600.0,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self._algorithms = list(algorithms)
        self._timeout = timeout_seconds
        self.documents = ProviderDocuments(self.issuer, self._http, max_age_seconds=keys_max_age_seconds)

    def _http(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(timeout=self._timeout, follow_redirects=False)

    def _oauth_client(self, redirect_uri: str) -> AsyncOAuth2Client:
        """The OAuth client, from the hub's settings only (nothing from discovery)."""
        return AsyncOAuth2Client(
            client_id=self.client_id,
            client_secret=self._client_secret,
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method name
            scope=SCOPE,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=self._timeout,
            follow_redirects=False,
        )

    async def authorization(self, redirect_uri: str) -> AuthorizationRequest:
        """A fresh authorization request (new state, nonce and PKCE verifier)."""
        try:
            async with asyncio.timeout(self._timeout):
                metadata = await self.documents.metadata()
        except TimeoutError:
            raise SignInRefused("provider-timeout", NOT_IN_TIME, status=503) from None
        except _PROVIDER_FAULTS as err:
            log.warning("identity provider unusable", extra={"code": type(err).__name__})
            raise SignInRefused("provider-unreachable", UNREACHABLE, status=503) from None
        verifier, nonce = generate_token(48), generate_token(20)
        async with self._oauth_client(redirect_uri) as client:
            url, state = client.create_authorization_url(
                metadata.authorization_endpoint, code_verifier=verifier, nonce=nonce
            )
        return AuthorizationRequest(url, state, nonce, verifier)

    async def complete(self, *, code: str, redirect_uri: str, code_verifier: str, nonce: str) -> SignedInStaff:
        """Exchange the code and check the ID token; SignInRefused if anything does not hold."""
        try:
            async with asyncio.timeout(self._timeout):
                metadata = await self.documents.metadata()
                async with self._oauth_client(redirect_uri) as client:
                    token = await client.fetch_token(
                        metadata.token_endpoint, grant_type="authorization_code", code=code, code_verifier=code_verifier
                    )
                claims = await self._checked_claims(token, nonce, metadata.issuer)
        except TimeoutError:
            log.warning("staff sign-in refused", extra={"code": "provider-timeout"})
            raise SignInRefused("provider-timeout", NOT_IN_TIME) from None
        except _TOKEN_FAULTS as err:
            log.warning("staff sign-in refused", extra={"code": type(err).__name__})
            raise SignInRefused("token-refused", UNCHECKABLE) from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject.strip() or len(subject) > MAX_SUBJECT_LENGTH:
            log.warning("staff sign-in refused", extra={"code": "unusable-subject"})
            raise SignInRefused("unusable-subject", NO_SUBJECT)
        name = claims.get("name") or claims.get("preferred_username") or subject
        return SignedInStaff(subject, str(name)[:200], claims)

    async def _checked_claims(self, token: Any, nonce: str, issuer: str) -> dict[str, Any]:
        if not isinstance(token, dict) or not isinstance(token.get("id_token"), str):
            raise ValueError("the token response has no ID token")
        registry = JWSRegistry(algorithms=self._algorithms)
        try:
            decoded = jwt.decode(token["id_token"], await self.documents.key_set(), registry=registry)
        except InvalidKeyIdError:  # perhaps a key the provider has just added
            decoded = jwt.decode(token["id_token"], await self.documents.key_set(force=True), registry=registry)
        params = {"nonce": nonce, "client_id": self.client_id, "access_token": token.get("access_token")}
        options = {
            "iss": {"essential": True, "value": issuer},
            "aud": {"essential": True, "value": self.client_id},
            "exp": {"essential": True},
            "nonce": {"essential": True},
        }
        claims = CodeIDToken(decoded.claims, decoded.header, options, params)
        claims.validate(leeway=LEEWAY_SECONDS)
        return dict(claims)
