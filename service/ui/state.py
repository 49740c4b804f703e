"""What the staff pages keep on the aiohttp Application: the session store and the OIDC relying party."""

from __future__ import annotations

from aiohttp import web

from service.identity.oidc_client import OidcRelyingParty
from service.ui.sessions import SessionStore

SESSION_STORE = web.AppKey("ui_session_store", SessionStore)
RELYING_PARTY = web.AppKey("ui_relying_party", OidcRelyingParty)
