"""The development OpenID Connect provider at `/dev-idp/`, on only with HANDOVER_DEV_IDP=1 (`make demo`, tests).

It stands in for NHS CIS2 or Entra ID so the hub's relying party is exercised through the real redirect flow:
a discovery document, a JWKS, an authorize page with one button per development user (labelled with the user
and role), and a token endpoint that checks the client secret, the redirect URI and the PKCE verifier (S256)
before it issues an ES256 ID token carrying the nonce and the role claim. Authorization codes are short-lived
JWTs signed with the development staff key and used once (the single-use token table remembers them).
Nothing here is fit for production: anyone who can reach the page can sign in as any development user.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web
from authlib.oauth2.rfc7636.challenge import compare_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from service.config import Settings
from service.http.context import SERVICES
from service.identity.signing import sign_compact_jwt, thumbprint
from service.identity.staff import STAFF_KEY_FILE, ensure_dev_staff_key
from service.store import db, tokens

CALLBACK_PATH = "/ui/auth/callback"
CODE_SECONDS = 60
ID_TOKEN_SECONDS = 300


@dataclass(frozen=True)
class DevUser:
    subject: str
    name: str
    role: str

    @property
    def label(self) -> str:
        return f"{self.name} \u2014 {self.role}"


DEV_USERS = (
    DevUser("amara.okafor", "Dr Amara Okafor", "governance"),
    DevUser("sam.patel", "Sam Patel", "ops"),
    DevUser("jo.whitfield", "Jo Whitfield", "smdt-coordinator"),
    DevUser("lewis.grant", "Dr Lewis Grant", "trust:RM1"),
    DevUser("priya.shah", "Dr Priya Shah", "trust:RDE"),
    DevUser("tom.reid", "Tom Reid", "trust:RGN"),
)
_USERS = {u.subject: u for u in DEV_USERS}


def dev_issuer(settings: Settings) -> str:
    """HANDOVER_OIDC_ISSUER if set, else this hub's own /dev-idp at its public URL (HANDOVER_PUBLIC_URL, else the
    address it listens on)."""
    if settings.oidc_issuer:
        return settings.oidc_issuer.rstrip("/")
    return f"{settings.staff_public_url}/dev-idp"


def dev_client_secret(keys_dir: Path) -> str:
    """The development client secret: derived from the development staff key, so every worker agrees on it
    and nothing secret is committed."""
    ensure_dev_staff_key(keys_dir)
    private = json.loads((keys_dir / STAFF_KEY_FILE).read_text(encoding="utf-8"))
    return hmac.new(str(private["d"]).encode(), b"handover dev-idp client secret", hashlib.sha256).hexdigest()


class DevIdentityProvider:
    """The provider's state: issuer, the one client it knows, and the signing key (the dev staff key)."""

    def __init__(
        self, issuer: str, client_id: str, client_secret: str, private_jwk: dict[str, Any], role_claim: str
    ) -> None:
        self.issuer = issuer
        self.role_claim = role_claim
        self.client_id = client_id
        self.client_secret = client_secret
        self._private = private_jwk
        self._public = {k: private_jwk[k] for k in ("kty", "crv", "x", "y")} | {
            "kid": thumbprint(private_jwk),
            "alg": "ES256",
            "use": "sig",
        }

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["openid", "profile"],
            "claims_supported": ["sub", "name", "roles", "nonce"],
        }

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self._public]}

    def redirect_allowed(self, redirect_uri: str) -> bool:
        """Only this hub's own callback (same scheme and host as the issuer)."""
        ours, theirs = urlsplit(self.issuer), urlsplit(redirect_uri)
        return (theirs.scheme, theirs.netloc, theirs.path, theirs.query) == (
            ours.scheme,
            ours.netloc,
            CALLBACK_PATH,
            "",
        )

    def issue_code(self, user: DevUser, params: dict[str, str]) -> tuple[str, str]:
        now, jti = int(time.time()), str(uuid.uuid4())
        claims = {
            "typ": "dev-idp-code",
            "iss": self.issuer,
            "sub": user.subject,
            "client_id": params["client_id"],
            "redirect_uri": params["redirect_uri"],
            "code_challenge": params["code_challenge"],
            "nonce": params.get("nonce", ""),
            "iat": now,
            "exp": now + CODE_SECONDS,
            "jti": jti,
        }
        return sign_compact_jwt(claims, self._private), jti

    def read_code(self, code: str) -> dict[str, Any] | None:
        try:
            claims = jwt.decode(code, ECKey.import_key(self._public), algorithms=["ES256"]).claims
        except (JoseError, ValueError, TypeError):
            return None
        if claims.get("typ") != "dev-idp-code" or claims.get("iss") != self.issuer:
            return None
        if not isinstance(claims.get("exp"), int) or claims["exp"] < time.time():
            return None
        return dict(claims)

    def id_token(self, user: DevUser, nonce: str) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": user.subject,
            "aud": self.client_id,
            "iat": now,
            "exp": now + ID_TOKEN_SECONDS,
            "name": user.name,
            self.role_claim: [user.role],
        }
        if nonce:
            claims["nonce"] = nonce
        return sign_compact_jwt(claims, self._private)


DEV_IDP = web.AppKey("dev_idp", DevIdentityProvider)


def install(app: web.Application, settings: Settings) -> None:
    """Add the /dev-idp/ routes (call only when settings.dev_idp is on)."""
    ensure_dev_staff_key(settings.keys_dir)
    private = json.loads((settings.keys_dir / STAFF_KEY_FILE).read_text(encoding="utf-8"))
    secret = settings.oidc_client_secret or dev_client_secret(settings.keys_dir)
    app[DEV_IDP] = DevIdentityProvider(
        dev_issuer(settings), settings.oidc_client_id, secret, private, settings.oidc_role_claim
    )
    app.router.add_get("/dev-idp/.well-known/openid-configuration", _discovery)
    app.router.add_get("/dev-idp/jwks", _jwks)
    app.router.add_get("/dev-idp/authorize", _authorize_page)
    app.router.add_post("/dev-idp/authorize", _authorize)
    app.router.add_post("/dev-idp/token", _token)


_AUTHORIZE_PARAMS = ("response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge")


def _checked_params(provider: DevIdentityProvider, source: Any) -> dict[str, str]:
    params = {name: str(source.get(name, "")) for name in (*_AUTHORIZE_PARAMS, "code_challenge_method")}
    problems = []
    if params["response_type"] != "code":
        problems.append("response_type must be code")
    if params["client_id"] != provider.client_id:
        problems.append("unknown client_id")
    if not provider.redirect_allowed(params["redirect_uri"]):
        problems.append("redirect_uri is not this hub's callback")
    if "openid" not in params["scope"].split():
        problems.append("scope must include openid")
    if params["code_challenge_method"] != "S256" or not params["code_challenge"]:
        problems.append("PKCE with code_challenge_method S256 is required")
    if not params["state"]:
        problems.append("state is required")
    if problems:
        raise web.HTTPBadRequest(text="; ".join(problems))
    return params


async def _discovery(request: web.Request) -> web.Response:
    return web.json_response(request.app[DEV_IDP].discovery())


async def _jwks(request: web.Request) -> web.Response:
    return web.json_response(request.app[DEV_IDP].jwks())


async def _authorize_page(request: web.Request) -> web.Response:
    from service.ui.rendering import render  # noqa: PLC0415 - the page shares the staff pages' layout

    params = _checked_params(request.app[DEV_IDP], request.query)
    hidden = [(name, params[name]) for name in (*_AUTHORIZE_PARAMS, "code_challenge_method")]
    return render(
        request, "signin/dev_idp.html", {"page_title": "Development sign-in", "hidden": hidden, "users": DEV_USERS}
    )


async def _authorize(request: web.Request) -> web.Response:
    provider = request.app[DEV_IDP]
    form = await request.post()
    params = _checked_params(provider, form)
    user = _USERS.get(str(form.get("user", "")))
    if user is None:
        raise web.HTTPBadRequest(text="unknown development user")
    code, _ = provider.issue_code(user, params)
    raise web.HTTPSeeOther(f"{params['redirect_uri']}?{urlencode({'code': code, 'state': params['state']})}")


def _oauth_error(error: str, status: int = 400) -> web.Response:
    return web.json_response({"error": error}, status=status, headers={"Cache-Control": "no-store"})


def _client_credentials(request: web.Request, form: Any) -> tuple[str, str]:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            client_id, _, secret = base64.b64decode(value, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return "", ""
        from urllib.parse import unquote_plus  # noqa: PLC0415 - RFC 6749 2.3.1 form-encodes both parts

        return unquote_plus(client_id), unquote_plus(secret)
    return str(form.get("client_id", "")), str(form.get("client_secret", ""))


async def _token(request: web.Request) -> web.Response:
    provider = request.app[DEV_IDP]
    form = await request.post()
    client_id, secret = _client_credentials(request, form)
    if client_id != provider.client_id or not hmac.compare_digest(secret.encode(), provider.client_secret.encode()):
        return _oauth_error("invalid_client", 401)
    if form.get("grant_type") != "authorization_code":
        return _oauth_error("unsupported_grant_type")
    claims = provider.read_code(str(form.get("code", "")))
    verifier = str(form.get("code_verifier", ""))
    if (
        claims is None
        or claims["client_id"] != client_id
        or claims["redirect_uri"] != form.get("redirect_uri")
        or not verifier
        or not compare_s256_code_challenge(verifier, claims["code_challenge"])
    ):
        return _oauth_error("invalid_grant")
    pool = request.app[SERVICES].pool
    async with db.transaction(pool) as conn:
        fresh = await tokens.remember_token_id(
            conn, "dev-idp-code", claims["jti"], datetime.fromtimestamp(claims["exp"], UTC)
        )
    user = _USERS.get(claims["sub"])
    if not fresh or user is None:
        return _oauth_error("invalid_grant")
    return web.json_response(
        {
            "access_token": secrets.token_urlsafe(32),
            "token_type": "Bearer",
            "expires_in": ID_TOKEN_SECONDS,
            "scope": "openid profile",
            "id_token": provider.id_token(user, claims["nonce"]),
        },
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )
