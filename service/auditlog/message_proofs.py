"""Each message's audit entries, with their inclusion proofs checked against the latest signed checkpoint.

The checkpoint's signature is verified with the hub's registered keys; each entry's leaf hash is computed
from its stored bytes (not taken from the stored hash), and its RFC 9162 inclusion proof (from the process's
tree) is verified against the checkpoint's root with the independent verifier. An entry newer than the
checkpoint is `pending` until the next one is signed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from service.auditlog import verifier
from service.auditlog.tree import AuditLogReader
from service.errors import HandoverError
from service.identity.notes import Checkpoint, CheckpointError, hub_note_keys, log_origin, verify_checkpoint
from service.identity.registry import Registry
from service.store import audit_reads, db

VERIFIED, PENDING, FAILED = "verified", "pending", "failed"


@dataclass(frozen=True)
class ProvenEntry:
    index: int
    event_type: str
    outcome: str
    recorded_at: datetime
    status: str  # verified | pending | failed


@dataclass(frozen=True)
class MessageProofs:
    checkpoint: Checkpoint | None
    checkpoint_signed_at: datetime | None
    checkpoint_problem: str | None
    entries: dict[UUID, list[ProvenEntry]]


async def prove_messages(
    pool: asyncpg.Pool, reader: AuditLogReader, registry: Registry, message_ids: list[UUID]
) -> MessageProofs:
    async with db.connection(pool) as conn:
        found = await audit_reads.entries_for_messages(conn, message_ids)
    stored = await reader.latest_checkpoint()
    checkpoint, problem = None, None
    if stored is not None:
        try:
            checkpoint = verify_checkpoint(stored.note, hub_note_keys(log_origin(registry.network), registry.hub_keys))
        except CheckpointError as err:
            problem = str(err)
    entries: dict[UUID, list[ProvenEntry]] = {}
    for entry in found:
        status = PENDING if checkpoint is None or entry.index >= checkpoint.tree_size else FAILED
        if checkpoint is not None and status == FAILED:
            try:
                proof = await reader.inclusion_proof(entry.index, checkpoint.tree_size)
            except HandoverError:
                proof = []
            digest = verifier.leaf_hash(entry.leaf)
            if verifier.verify_inclusion(digest, entry.index, checkpoint.tree_size, proof, checkpoint.root_hash):
                status = VERIFIED
        if problem is not None:
            status = FAILED
        entries.setdefault(entry.message_id, []).append(
            ProvenEntry(entry.index, entry.event_type, entry.outcome, entry.recorded_at, status)
        )
    return MessageProofs(checkpoint, stored.signed_at if stored else None, problem, entries)
