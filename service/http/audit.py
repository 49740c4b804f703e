"""The audit log over HTTP (CONTRACT.md section 6): the latest signed checkpoint, entries, and RFC 9162 proofs.

Checkpoints and proofs are hashes and sizes only and are served without authentication, so that any trust
or witness can fetch and compare them (split-view detection depends on that). Entries carry event metadata
(ODS codes, message ids, payload digests; never clinical content) and are for governance staff only
(CONTRACT.md section 6 roles); each read is logged with the reader. Bad or missing query parameters are
400 `bad-header`; sizes and indexes beyond the log are 404 `not-found`. Entries follow RFC 9162 get-entries:
`end` is inclusive and clamped to the log, and at most 1000 entries are returned per call.

`audit_context` is the start-up/shutdown piece for `app.cleanup_ctx` (after the one that sets SERVICES): it
rebuilds and self-checks the tree, then runs the checkpoint signer until shutdown.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from functools import partial

from aiohttp import web

from service.auditlog.checkpoints import CheckpointSigner
from service.auditlog.published import PublishedCheckpoints
from service.auditlog.tree import AuditLogReader, AuditTree
from service.config import Settings
from service.errors import Code, HandoverError
from service.http.auth import authenticate_staff
from service.http.context import SERVICES
from service.identity.hubkey import HubSigningKey
from service.identity.notes import hub_note_keys, log_origin
from service.identity.registry import RegistryHolder
from service.identity.roles import StaffRole
from service.store import db

log = logging.getLogger("handover.http.audit")

AUDIT_LOG = web.AppKey("audit_log", AuditLogReader)
_COUNT = re.compile(r"[0-9]{1,18}")


def install(app: web.Application, settings: Settings) -> None:
    """Add the audit routes and `audit_context` to `app`; call after the cleanup context that sets SERVICES."""
    app.cleanup_ctx.append(audit_context(settings))
    app.router.add_get("/audit/checkpoint", checkpoint)
    app.router.add_get("/audit/entries", entries)
    app.router.add_get("/audit/proof/inclusion", inclusion_proof)
    app.router.add_get("/audit/proof/consistency", consistency_proof)


def audit_context(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    """Start-up: load the tree from the store (refusing to start if it fails its self-check) and start the
    checkpoint signer; shutdown: stop the signer."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        hub = app[SERVICES]
        async with db.connection(hub.pool) as conn:
            tree = await AuditTree.load(conn)
        signer = CheckpointSigner(
            hub.pool,
            tree,
            # The hub key in service, following the registry's active hub key: checkpoints are signed with the
            # new key from the reload that makes it active, and each stored checkpoint names its signer's kid.
            partial(
                HubSigningKey(settings.keys_dir, hub.registry).note_signer, log_origin(hub.registry.current.network)
            ),
            interval_seconds=settings.checkpoint_seconds,
            published=_published_record(settings, hub.registry),
        )
        app[AUDIT_LOG] = AuditLogReader(hub.pool, tree)
        task = asyncio.create_task(signer.run(), name="audit-checkpoint-signer")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return context


def _published_record(settings: Settings, registry: RegistryHolder) -> PublishedCheckpoints | None:
    """The record of published checkpoints outside the database, checked against the registry's hub keys."""
    if settings.checkpoint_record_dir is None:
        return None
    origin = log_origin(registry.current.network)
    return PublishedCheckpoints(
        settings.checkpoint_record_dir, origin, lambda: hub_note_keys(origin, registry.current.hub_keys)
    )


async def checkpoint(request: web.Request) -> web.Response:
    """GET /audit/checkpoint: the latest signed checkpoint note, as text."""
    latest = await request.app[AUDIT_LOG].latest_checkpoint()
    if latest is None:
        raise HandoverError(Code.NOT_FOUND, "no audit checkpoint has been signed yet")
    return web.Response(text=latest.note, content_type="text/plain", headers={"Cache-Control": "no-cache"})


async def entries(request: web.Request) -> web.Response:
    """GET /audit/entries?start=&end=: entries start..end (inclusive, at most 1000) as index and base64 leaf."""
    reader = await authenticate_staff(request, StaffRole.GOVERNANCE)
    start = _count(request, "start")
    end = _count(request, "end") if "end" in request.query else None
    found = await request.app[AUDIT_LOG].entries(start, end)
    log.info("audit entries read", extra={"user": reader.user, "start": start, "count": len(found)})
    return web.json_response([{"index": e.index, "leaf": _b64(e.leaf)} for e in found])


async def inclusion_proof(request: web.Request) -> web.Response:
    """GET /audit/proof/inclusion?index=&size=: the RFC 9162 inclusion proof of entry `index` in tree `size`."""
    index, size = _count(request, "index"), _count(request, "size")
    hashes = await request.app[AUDIT_LOG].inclusion_proof(index, size)
    return web.json_response({"hashes": [_b64(h) for h in hashes]})


async def consistency_proof(request: web.Request) -> web.Response:
    """GET /audit/proof/consistency?first=&second=: the RFC 9162 consistency proof between two tree sizes."""
    first, second = _count(request, "first"), _count(request, "second")
    hashes = await request.app[AUDIT_LOG].consistency_proof(first, second)
    return web.json_response({"hashes": [_b64(h) for h in hashes]})


def _count(request: web.Request, name: str) -> int:
    values = request.query.getall(name, [])
    if len(values) != 1 or not _COUNT.fullmatch(values[0]):
        raise HandoverError(Code.BAD_HEADER, f"query parameter {name!r} must be given once, as a non-negative integer")
    return int(values[0])


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
