"""Rendering a staff page: the template with the session, its CSRF token, the navigation the role may use and
the page title. Security headers (a Content-Security-Policy without inline script among them) are added to
every response by `service.http.security_headers`.

`NAVIGATION` lists the header links; a link appears only for the roles named and only if its page exists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from markupsafe import Markup

from service.http.context import SERVICES
from service.ui import display_text, formatting
from service.ui.access import has_role, session_of
from service.ui.sessions import StaffSession

EVERY_ROLE = ("governance", "ops", "smdt-coordinator", "trust")


@dataclass(frozen=True)
class NavItem:
    label: str
    path: str
    roles: tuple[str, ...]


NAVIGATION = (
    NavItem("Worklist", "/ui/", ("governance", "smdt-coordinator", "trust")),
    NavItem("Operations", "/ui/", ("ops",)),
    NavItem("Episodes", "/ui/episodes", ("governance", "smdt-coordinator", "trust")),
    NavItem("SMDT meeting", "/ui/meeting", ("smdt-coordinator",)),
    NavItem("Governance", "/ui/governance", ("governance",)),
    NavItem("Deliveries", "/ui/deliveries", ("ops", "governance")),
    NavItem("Audit", "/ui/audit", ("governance",)),
    NavItem("Profiles", "/ui/profiles", EVERY_ROLE),
    NavItem("Safety", "/ui/safety", ("governance",)),
)


def navigation(request: web.Request, session: StaffSession | None) -> list[dict[str, Any]]:
    if session is None:
        return []
    routed = {
        info.get("path") or info.get("formatter") for info in (r.get_info() for r in request.app.router.resources())
    }
    return [
        {"label": item.label, "path": item.path, "current": request.path == item.path}
        for item in NAVIGATION
        if has_role(session, *item.roles) and item.path in routed
    ]


def render(request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200) -> web.Response:
    """The page `template` (under service/ui/templates/) filled from `context`, as an HTML response."""
    session = session_of(request)
    full = {
        "page_title": context.get("page_title", "Handover"),
        **context,
        "session": session,
        "csrf_token": session.csrf_token if session is not None else "",
        "navigation": navigation(request, session),
    }
    return aiohttp_jinja2.render_template(template, request, full, status=status)


def organisation_words(request: web.Request) -> Callable[[str | None], str]:
    """The `org` filter for code outside a template (a chart's category labels): the organisation's name with its
    ODS code beside it, exactly as the pages write it."""
    org: Callable[[str | None], str] = aiohttp_jinja2.get_env(request.app).filters["org"]
    return org


@jinja2.pass_context
def csrf_field(context: jinja2.runtime.Context) -> Markup:
    """The hidden input every form carries (forms.read_form checks it)."""
    return Markup('<input type="hidden" name="csrf_token" value="{}">').format(context.get("csrf_token", ""))


def configure(env: jinja2.Environment, app: web.Application) -> None:
    """Filters and globals of the staff pages' template environment."""
    env.filters["date"] = formatting.format_date
    env.filters["datetime"] = formatting.format_datetime
    env.filters["duration"] = formatting.format_duration
    env.filters["org"] = formatting.organisation_formatter(
        lambda ods: app[SERVICES].registry.current.participants.get(ods)  # noqa: PLW0108 - SERVICES is set at start-up
    )
    env.filters["role_words"] = lambda role: display_text.role_words(role, env.filters["org"])
    env.filters["nhs_number"] = formatting.format_nhs_number
    for name in ("event_words", "state_words", "outcome_words", "alert_words", "deadline_words", "audit_words"):
        env.filters[name] = getattr(display_text, name)
    env.filters["audit_outcome_words"] = display_text.audit_outcome_words
    env.globals["csrf_field"] = csrf_field
