"""Headers on every response, API and pages alike (CONTRACT.md section 8).

`X-Content-Type-Options: nosniff`; `Cache-Control: no-store` unless the response is a public static asset
(`/ui/static/`, cached for a day) or the handler chose its own; a `Server` header naming no versions;
`Strict-Transport-Security` when served over TLS (directly, or through a trusted proxy that says so); and on
HTML a Content-Security-Policy that allows only the hub's own scripts, styles and images (no inline script, no
other origin, no framing) unless the handler set a policy of its own (the profile pages set one with no script
at all).
"""

from __future__ import annotations

from aiohttp import web

from service.http.forwarded import reached_over_tls

STATIC_PREFIX = "/ui/static/"
SERVER_NAME = "Handover"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; manifest-src 'self'"
)


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Server"] = SERVER_NAME
    if request.path.startswith(STATIC_PREFIX) and response.status == 200:
        headers["Cache-Control"] = "public, max-age=86400"
    elif "no-store" not in headers.get("Cache-Control", ""):
        headers["Cache-Control"] = "no-store"
    if reached_over_tls(request):
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    if (response.content_type or "").startswith("text/html") or headers.get("Content-Type", "").startswith("text/html"):
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)  # a stricter page may set its own
        headers["Referrer-Policy"] = "same-origin"
        headers["X-Frame-Options"] = "DENY"


def install(app: web.Application) -> None:
    """Run `add_security_headers` on every response `app` prepares (handlers, errors, redirects, files)."""
    app.on_response_prepare.append(add_security_headers)
