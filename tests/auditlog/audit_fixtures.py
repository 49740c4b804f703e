"""Shared pieces for the audit log tests: events, appends, a signer, superuser tampering, the vectors' path."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from service.auditlog.appending import append_event
from service.auditlog.checkpoints import CheckpointSigner
from service.auditlog.events import AuditEvent, EventType
from service.auditlog.tree import AuditTree
from service.clock import Clock
from service.identity.notes import NoteSigner, log_origin
from service.store import db
from service.store.audit import AppendedLeaf
from service.store.checkpoints import StoredCheckpoint
from tests.support.hub import Network

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "transparency-dev-merkle" / "testdata"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def event(number: int) -> AuditEvent:
    return AuditEvent(
        type=EventType.MESSAGE_ACCEPTED,
        outcome="accepted",
        actor="RM1",
        at=T0 + timedelta(seconds=number),
        message_id=uuid.uuid5(uuid.NAMESPACE_URL, f"urn:test:{number}"),
        details={"payload_sha256": hashlib.sha256(str(number).encode()).hexdigest(), "recipient": "RGT"},
    )


async def append_events(dsn: str, count: int, *, first: int = 0) -> list[AppendedLeaf]:
    """`count` events, each in its own transaction as the service appends them."""
    conn = await asyncpg.connect(dsn)
    try:
        appended = []
        for number in range(first, first + count):
            async with conn.transaction():
                appended.append(await append_event(conn, event(number)))
        return appended
    finally:
        await conn.close()


def note_signer(network: Network) -> NoteSigner:
    return NoteSigner(network.private_key("hub"), log_origin(network.registry.network))


@asynccontextmanager
async def pool_for(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(dsn, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


async def sign_checkpoint(
    dsn: str, network: Network, *, signer: NoteSigner | None = None, clock: Clock | None = None
) -> StoredCheckpoint:
    """Rebuild the tree from the database (as a restarted service does) and sign a checkpoint of it now."""
    async with pool_for(dsn) as pool:
        async with db.connection(pool) as conn:
            tree = await AuditTree.load(conn)
        extra = {} if clock is None else {"clock": clock}
        checkpoint_signer = CheckpointSigner(pool, tree, signer or note_signer(network), interval_seconds=3600, **extra)
        stored = await checkpoint_signer.sign_if_due(force=True)
        assert stored is not None
        return stored


@asynccontextmanager
async def superuser(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection that bypasses the append-only triggers, as a database superuser could."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET session_replication_role = replica")
        yield conn
    finally:
        await conn.close()
