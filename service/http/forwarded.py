"""Requests that reach the hub through a TLS-terminating proxy: `X-Forwarded-Proto` and `X-Forwarded-For` are
believed only when the peer is one of HANDOVER_TRUSTED_PROXIES (addresses or CIDR blocks; none by default).

From a trusted peer, the request is seen as https when the nearest proxy says so (the last value of
`X-Forwarded-Proto`), and its client is the nearest address in `X-Forwarded-For` that is not itself a trusted
proxy (read from the right, so a client cannot choose its own address by sending the header). From any other
peer both headers are ignored: anyone can send them.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address

from aiohttp import web
from aiohttp.typedefs import Middleware

from service.http.middleware import Handler

Networks = Sequence[IPv4Network | IPv6Network]
# Set on the request as the server received it, for steps that see that one rather than the middleware's clone
# (response-prepare signals such as the security headers).
FORWARDED_HTTPS = web.RequestKey("forwarded_https", bool)


def reached_over_tls(request: web.Request) -> bool:
    """The request came over TLS, directly or through a trusted proxy that says so."""
    return request.secure or request.get(FORWARDED_HTTPS, False)


def _trusted(address: str | None, proxies: Networks) -> bool:
    if not address:
        return False
    try:
        parsed = ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in proxies)


def client_address(peer: str | None, forwarded_for: str, proxies: Networks) -> str | None:
    """The client's address: the peer's, or, when the peer is a trusted proxy, the nearest untrusted hop."""
    if not _trusted(peer, proxies):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        try:
            ip_address(hop)
        except ValueError:
            return peer  # a hop we cannot read: stop believing the header there
        if not _trusted(hop, proxies):
            return hop
    return hops[0] if hops else peer


def forwarded_middleware(proxies: Networks) -> Middleware:
    """Middleware that applies what trusted proxies say to each request (a no-op without trusted proxies)."""

    @web.middleware
    async def forwarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not proxies or not _trusted(request.remote, proxies):
            return await handler(request)
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[-1].strip().lower()
        scheme = proto if proto in ("http", "https") else request.scheme
        remote = client_address(request.remote, request.headers.get("X-Forwarded-For", ""), proxies)
        request[FORWARDED_HTTPS] = scheme == "https"
        return await handler(request.clone(scheme=scheme, remote=remote or ""))

    return forwarded
