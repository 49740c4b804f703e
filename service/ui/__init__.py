"""The staff pages under /ui/: templates (aiohttp-jinja2, autoescaped), static files (the vendored NHS.UK
frontend and our own css/js at /ui/static/), sessions, sign-in, and every page module in `PAGE_MODULES`.

`install(app, settings)` wires it all into the hub; each page module exposes `add_routes(router)`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import aiohttp_jinja2
import jinja2
from aiohttp import web

from service.config import Settings
from service.http.context import SERVICES
from service.identity import dev_idp
from service.identity.oidc_client import OidcRelyingParty
from service.ui import audit as audit_page
from service.ui import cwt as cwt_page
from service.ui import deliveries as deliveries_page
from service.ui import episode, episode_list, front_door, meeting, profiles, safety, signin, worklist
from service.ui import governance as governance_page
from service.ui import payload as payload_page
from service.ui.error_pages import error_pages
from service.ui.rendering import configure
from service.ui.sessions import PUBLIC_URL, SessionStore
from service.ui.sign_in_limit import SignInStartLimit
from service.ui.state import RELYING_PARTY, SESSION_STORE, SIGN_IN_LIMIT

HERE = Path(__file__).resolve().parent
PAGE_MODULES: tuple[ModuleType, ...] = (
    signin,
    worklist,
    episode_list,
    meeting,
    episode,
    governance_page,
    cwt_page,
    payload_page,
    audit_page,
    deliveries_page,
    safety,
    front_door,
    profiles,
)


def install(app: web.Application, settings: Settings) -> None:
    """Add the staff pages to `app`; call after the cleanup context that sets SERVICES."""
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    configure(env, app)
    app.middlewares.append(error_pages)
    app[PUBLIC_URL] = settings.staff_public_url
    app[SIGN_IN_LIMIT] = SignInStartLimit(settings.ui_sign_in_starts_per_minute)
    app.router.add_static("/ui/static/", HERE / "static", follow_symlinks=False, append_version=False)
    for module in PAGE_MODULES:
        module.add_routes(app.router)
    if settings.dev_idp:
        dev_idp.install(app, settings)
    app.cleanup_ctx.append(_context(settings))
    app.cleanup_ctx.append(audit_page.verification_context)  # "verify now" runs in the background


def _context(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        hub = app[SERVICES]
        app[SESSION_STORE] = SessionStore(
            hub.pool, timedelta(minutes=settings.ui_idle_minutes), timedelta(hours=settings.ui_max_session_hours)
        )
        issuer = (
            dev_idp.dev_issuer(settings) if settings.oidc_issuer is None and settings.dev_idp else settings.oidc_issuer
        )
        secret = settings.oidc_client_secret
        if secret is None and settings.dev_idp:
            secret = dev_idp.dev_client_secret(settings.keys_dir)
        if issuer is not None:
            app[RELYING_PARTY] = OidcRelyingParty(
                issuer,
                settings.oidc_client_id,
                secret,
                algorithms=settings.oidc_algorithms,
                timeout_seconds=settings.oidc_timeout_seconds,
                keys_max_age_seconds=settings.oidc_keys_max_age_seconds,
            )
        yield

    return context
