"""Storing signed audit checkpoints: one per tree size, sizes and times only growing.

`insert_checkpoint` compares before it inserts: a checkpoint already stored for the same size with the same
root is returned instead (a second signer, or a restart, lost a harmless race); one with a different root
raises `ConflictingCheckpointError` and nothing is written. The table's key and trigger
(migrations/0002_audit_checkpoints.sql) refuse what slips past this. Callers hold `lock_checkpoints` for the
whole compare-and-insert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

_CHECKPOINT_LOCK_KEY = 0x61756469745F6370  # "audit_cp": one checkpoint signer at a time, across processes


class ConflictingCheckpointError(RuntimeError):
    """A checkpoint of this size with a different root is already stored: the log would fork."""


@dataclass(frozen=True)
class StoredCheckpoint:
    """A signed checkpoint as stored: its size, root, the hub's clock when signed, signing kid and note text."""

    tree_size: int
    root_hash: bytes
    signed_at: datetime
    key_id: str
    note: str


async def lock_checkpoints(conn: asyncpg.Connection) -> None:
    """Serialise checkpoint signing until the end of the current transaction."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _CHECKPOINT_LOCK_KEY)


async def latest_checkpoint(conn: asyncpg.Connection) -> StoredCheckpoint | None:
    row = await conn.fetchrow(f"{_SELECT} ORDER BY tree_size DESC LIMIT 1")
    return _checkpoint(row) if row is not None else None


async def checkpoint_at(conn: asyncpg.Connection, tree_size: int) -> StoredCheckpoint | None:
    row = await conn.fetchrow(f"{_SELECT} WHERE tree_size = $1", tree_size)
    return _checkpoint(row) if row is not None else None


async def all_checkpoints(conn: asyncpg.Connection) -> list[StoredCheckpoint]:
    """Every stored checkpoint, smallest first."""
    return [_checkpoint(row) for row in await conn.fetch(f"{_SELECT} ORDER BY tree_size")]


async def insert_checkpoint(conn: asyncpg.Connection, checkpoint: StoredCheckpoint) -> StoredCheckpoint:
    """Store `checkpoint`, or return the one already stored for its size if the roots agree.

    Raises ConflictingCheckpointError (nothing written) if a checkpoint of that size has another root.
    """
    existing = await checkpoint_at(conn, checkpoint.tree_size)
    if existing is not None:
        if existing.root_hash != checkpoint.root_hash:
            raise ConflictingCheckpointError(
                f"a checkpoint of size {checkpoint.tree_size} with root {existing.root_hash.hex()} is already "
                f"stored; refusing root {checkpoint.root_hash.hex()}"
            )
        return existing
    await conn.execute(
        "INSERT INTO audit_checkpoints (tree_size, root_hash, signed_at, key_id, note) VALUES ($1, $2, $3, $4, $5)",
        checkpoint.tree_size,
        checkpoint.root_hash,
        checkpoint.signed_at,
        checkpoint.key_id,
        checkpoint.note,
    )
    return checkpoint


_SELECT = "SELECT tree_size, root_hash, signed_at, key_id, note FROM audit_checkpoints"


def _checkpoint(row: asyncpg.Record) -> StoredCheckpoint:
    return StoredCheckpoint(
        int(row["tree_size"]), bytes(row["root_hash"]), row["signed_at"], str(row["key_id"]), str(row["note"])
    )
