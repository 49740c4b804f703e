"""What the staff pages keep on the aiohttp Application: the session store, the OIDC relying party and the
limit on sign-in starts."""

from __future__ import annotations

from aiohttp import web

from service.identity.oidc_client import OidcRelyingParty
from service.ui.sessions import SessionStore
from service.ui.sign_in_limit import SignInStartLimit

SESSION_STORE = web.AppKey("ui_session_store", SessionStore)
RELYING_PARTY = web.AppKey("ui_relying_party", OidcRelyingParty)
SIGN_IN_LIMIT = web.AppKey("ui_sign_in_limit", SignInStartLimit)
