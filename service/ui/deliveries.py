"""The deliveries page, `/ui/deliveries` (ops; governance may read): per recipient the queue depth, the oldest
undelivered message, the push circuit state (as the relay last recorded it), and the dead letters with their
non-delivery reports; ops may deliver a dead letter again, once (`POST /ui/deliveries/{message_id}/redeliver`,
CSRF-checked and audited by `service.delivery.redelivery`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from service.delivery.circuit import CircuitState
from service.delivery.redelivery import deliver_again
from service.errors import Code, HandoverError
from service.http.context import services
from service.identity.staff_roles import GOVERNANCE, OPS
from service.store import db, delivery_reads, display_lookups, ops_figures
from service.store.delivery_reads import CircuitRecord
from service.store.ops_figures import OperationsFigures
from service.ui.access import current_session, has_role, require_role
from service.ui.forms import read_form
from service.ui.paths import uuid_in_path
from service.ui.rendering import render
from service.ui.state import SESSION_STORE

DEAD_LETTERS_SHOWN = 100


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/ui/deliveries", show_deliveries)
    router.add_post("/ui/deliveries/{message_id}/redeliver", redeliver)


@dataclass(frozen=True)
class RecipientRow:
    ods: str
    channel: str  # "push" or "mailbox"
    pending: int
    oldest_pending_at: datetime | None
    dead_letters: int
    circuit: str  # closed | open | half-open | "" (pull-only, or never pushed to)
    failures: int
    open_until: datetime | None


def circuit_state(record: CircuitRecord | None, now: datetime) -> CircuitState | None:
    """The recorded circuit's state now (it opens until `open_until`, then lets one probe through)."""
    if record is None:
        return None
    if record.open_until is None:
        return CircuitState.CLOSED
    return CircuitState.OPEN if now < record.open_until else CircuitState.HALF_OPEN


def recipient_rows(
    participants: list[str],
    endpoints: set[str],
    figures: OperationsFigures,
    circuits: list[CircuitRecord],
    now: datetime,
) -> list[RecipientRow]:
    """One row per participant and per recipient with work, busiest first (dead letters, then depth)."""
    by_circuit = {c.recipient_ods: c for c in circuits}
    rows = []
    for ods in sorted(set(participants) | set(figures.queues) | set(figures.dead_letters)):
        queue = figures.queues.get(ods)
        record = by_circuit.get(ods) if ods in endpoints else None
        state = circuit_state(record, now)
        rows.append(
            RecipientRow(
                ods,
                "push" if ods in endpoints else "mailbox",
                queue.depth if queue else 0,
                queue.oldest_created_at if queue else None,
                figures.dead_letters.get(ods, 0),
                "" if state is None else state.value,
                record.failures if record else 0,
                record.open_until if record else None,
            )
        )
    return sorted(rows, key=lambda r: (-r.dead_letters, -r.pending, r.ods))


async def _page(request: web.Request, notice: dict[str, str] | None = None, status: int = 200) -> web.Response:
    session = await current_session(request)
    hub = services(request)
    now = hub.clock()
    registry = hub.registry.current
    async with db.connection(hub.pool) as conn:
        figures = await ops_figures.read_figures(conn)
        circuits = await delivery_reads.circuits(conn)
        dead = await delivery_reads.dead_letters(conn, DEAD_LETTERS_SHOWN)
        episodes = await display_lookups.episodes_of_messages(conn, [d.message_id for d in dead])
        names = await display_lookups.staff_names(conn, [d.requeued_by for d in dead if d.requeued_by])
    endpoints = {ods for ods, p in registry.participants.items() if p.active and p.endpoint}
    rows = recipient_rows(list(registry.participants), endpoints, figures, circuits, now)
    context: dict[str, Any] = {
        "page_title": "Deliveries",
        "rows": rows,
        "dead_letters": dead,
        "now": now,
        "may_redeliver": has_role(session, OPS),
        "notice": notice,
        "episodes": episodes if has_role(session, GOVERNANCE) else {},
        "names": names,
    }
    return render(request, "deliveries/overview.html", context, status=status)


async def show_deliveries(request: web.Request) -> web.Response:
    session = await current_session(request)
    require_role(session, OPS, GOVERNANCE)
    notice = await request.app[SESSION_STORE].take_notice(session)  # only what this session itself did
    return await _page(request, notice)


async def redeliver(request: web.Request) -> web.Response:
    session = await current_session(request)
    require_role(session, OPS)
    form = await read_form(request, session)
    message_id = uuid_in_path(request, "message_id", "No such dead letter")
    hub = services(request)
    async with db.connection(hub.pool) as conn:
        candidates = await delivery_reads.dead_letter_for_message(conn, message_id)
    recipient = form.get("recipient", "")
    chosen = [d for d in candidates if not recipient or d.recipient_ods == recipient]
    if len(chosen) != 1:
        text = "This message is no longer a dead letter (perhaps someone delivered it again already)."
        return await _page(request, {"kind": "problem", "text": text}, status=409)
    try:
        await deliver_again(hub.pool, chosen[0].delivery_id, session.subject, hub.clock)
    except HandoverError as err:
        if err.code is not Code.INVALID_TRANSITION:
            raise
        text = "This dead letter has already been delivered again once; it cannot be re-queued a second time."
        return await _page(request, {"kind": "problem", "text": text}, status=409)
    text = f"Message {message_id} is back in its queue and will be delivered again."
    await request.app[SESSION_STORE].leave_notice(session, "done", text)
    raise web.HTTPSeeOther("/ui/deliveries")
