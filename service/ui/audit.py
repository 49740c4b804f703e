"""The audit page, `/ui/audit` (governance): the latest signed checkpoint, "verify now" (the full verification in
the background, its progress at `/ui/audit/verify/{run_id}` and every result kept), a receipt or message id
checked for inclusion against the latest checkpoint, and the latest payload reads with their stated reasons.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from aiohttp import web

from service.auditlog.checkpoints import CheckpointError, hub_note_keys, log_origin, verify_checkpoint
from service.auditlog.events import EventType
from service.auditlog.inclusion_check import InclusionResult, check_message, check_receipt
from service.auditlog.verify_runs import AlreadyRunningError, VerificationRunner
from service.errors import Code, HandoverError
from service.http.audit import AUDIT_LOG
from service.http.context import SERVICES, services
from service.identity.staff_roles import GOVERNANCE
from service.store import audit_lookup, db, display_lookups, verify_runs
from service.store import checkpoints as checkpoint_store
from service.ui.access import current_session, require_role
from service.ui.forms import read_form
from service.ui.paths import uuid_in_path
from service.ui.rendering import render

VERIFY_RUNNER = web.AppKey("ui_verify_runner", VerificationRunner)
RECENT_READS = 20


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/ui/audit", show_audit)
    router.add_post("/ui/audit/verify", start_verification)
    router.add_get("/ui/audit/verify/{run_id}", show_verification)
    router.add_post("/ui/audit/receipt", look_up_receipt)


async def verification_context(app: web.Application) -> AsyncIterator[None]:
    """Start-up: the verification runner; shutdown: runs in progress stop (recorded as abandoned)."""
    hub = app[SERVICES]
    app[VERIFY_RUNNER] = VerificationRunner(hub.pool, lambda: hub.registry.current, hub.clock)
    yield
    await app[VERIFY_RUNNER].close()


def b64(raw: bytes | None) -> str:
    return "" if raw is None else base64.b64encode(raw).decode("ascii")


async def _overview(request: web.Request) -> dict[str, Any]:
    hub = services(request)
    async with db.connection(hub.pool) as conn:
        stored = await checkpoint_store.latest_checkpoint(conn)
        runs = await verify_runs.latest_runs(conn, 5)
        reads = await audit_lookup.latest_events(conn, EventType.PAYLOAD_READ.value, RECENT_READS)
        names = await display_lookups.staff_names(conn, [r.actor for r in reads] + [r.started_by for r in runs])
        episodes = await display_lookups.episodes_of_messages(conn, [r.message_id for r in reads])
    signature_ok = False
    if stored is not None:
        registry = hub.registry.current
        try:
            verify_checkpoint(stored.note, hub_note_keys(log_origin(registry.network), registry.hub_keys))
            signature_ok = True
        except CheckpointError:
            signature_ok = False
    return {
        "checkpoint": stored,
        "signature_ok": signature_ok,
        "runs": runs,
        "reads": reads,
        "b64": b64,
        "names": names,
        "episodes": episodes,
    }


async def show_audit(request: web.Request) -> web.Response:
    session = await current_session(request)
    require_role(session, GOVERNANCE)
    return render(request, "audit/overview.html", {"page_title": "Audit log", **await _overview(request)})


async def start_verification(request: web.Request) -> web.Response:
    session = await current_session(request)
    require_role(session, GOVERNANCE)
    await read_form(request, session)
    try:
        run_id = await request.app[VERIFY_RUNNER].start(session.subject)
    except AlreadyRunningError:
        async with db.connection(services(request).pool) as conn:
            running = next((r for r in await verify_runs.latest_runs(conn, 5) if r.finished_at is None), None)
        if running is None:  # it finished meanwhile: show the audit page with its result
            raise web.HTTPSeeOther("/ui/audit") from None
        run_id = running.id
    raise web.HTTPSeeOther(f"/ui/audit/verify/{run_id}")


async def show_verification(request: web.Request) -> web.Response:
    session = await current_session(request)
    require_role(session, GOVERNANCE)
    run_id = uuid_in_path(request, "run_id", "No such verification")
    async with db.connection(services(request).pool) as conn:
        run = await verify_runs.get_run(conn, run_id)
        names = await display_lookups.staff_names(conn, [run.started_by] if run is not None else [])
    if run is None:
        raise HandoverError(Code.NOT_FOUND, "No such verification")
    percent = 100 if run.total == 0 else min(100, run.checked * 100 // run.total)
    title = "Verifying the audit log" if run.finished_at is None else "Audit log verification"
    context = {"page_title": title, "run": run, "percent": percent, "b64": b64, "names": names}
    return render(request, "audit/verify.html", context)


async def look_up_receipt(request: web.Request) -> web.Response:
    session = await current_session(request)
    require_role(session, GOVERNANCE)
    form = await read_form(request, session)
    hub = services(request)
    reader = request.app[AUDIT_LOG]
    receipt, message_id = form.get("receipt", "").strip(), form.get("message_id", "").strip()
    result: InclusionResult
    if receipt:
        result = await check_receipt(hub.pool, reader, hub.registry.current, receipt)
    elif message_id:
        try:
            result = await check_message(hub.pool, reader, hub.registry.current, UUID(message_id))
        except ValueError:
            result = InclusionResult(False, "A message id looks like 3f2b8c1e-5d4a-4b6f-9e7d-1a2b3c4d5e6f")
    else:
        result = InclusionResult(False, "Paste a receipt or give a message id")
    context = {"page_title": "Audit log", **await _overview(request), "inclusion": result, "asked_id": message_id}
    status = 400 if not (receipt or message_id) else 200
    return render(request, "audit/overview.html", context, status=status)
