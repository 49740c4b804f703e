"""The operations engineer's home page (what `GET /ui/` shows the ops role; ops staff have no patients and no
worklist): the health of the delivery queues at a glance (messages waiting and for how long, dead letters, push
circuits not closed), the audit log's latest signed checkpoint, and links to the deliveries page, the metrics
and the health checks."""

from __future__ import annotations

from aiohttp import web

from service.http.context import services
from service.store import db, delivery_reads, ops_figures
from service.ui.deliveries import recipient_rows
from service.ui.rendering import render

LINKS = (
    ("/ui/deliveries", "Deliveries and dead letters", "every recipient's queue; deliver a dead letter again"),
    ("/metrics", "Metrics", "for Prometheus: queues, pushes, audit checkpoints, overdue answers, housekeeping"),
    ("/healthz", "Liveness", "the hub's process answers"),
    ("/readyz", "Readiness", "the hub's database answers"),
)


async def show_ops_home(request: web.Request) -> web.Response:
    hub = services(request)
    now = hub.clock()
    registry = hub.registry.current
    async with db.connection(hub.pool) as conn:
        figures = await ops_figures.read_figures(conn)
        circuits = await delivery_reads.circuits(conn)
    endpoints = {ods for ods, p in registry.participants.items() if p.active and p.endpoint}
    rows = recipient_rows(list(registry.participants), endpoints, figures, circuits, now)
    oldest = min((r.oldest_pending_at for r in rows if r.oldest_pending_at is not None), default=None)
    return render(
        request,
        "ops/home.html",
        {
            "page_title": "Operations",
            "now": now,
            "waiting": sum(r.pending for r in rows),
            "oldest": oldest,
            "dead_letters": sum(r.dead_letters for r in rows),
            "troubled": [r for r in rows if r.pending or r.dead_letters or r.circuit in ("open", "half-open")],
            "figures": figures,
            "links": LINKS,
        },
    )
