"""KEK rotation: a new active key-encryption key, every data key re-wrapped under it, and the retired KEK removed
once nothing needs it. Payload ciphertexts never change; only the small wrapped keys are rewritten.

``handover keys rotate-kek`` runs `rotate_kek`; running services pick up the new active KEK at once (the file
keyring re-reads a changed file before every use). ``handover keys rotate-kek --purge-retired`` runs
`purge_retired_keks` later (after any seal begun under the old KEK has committed, i.e. a minute later): it
re-wraps stragglers and removes retired KEKs that no data key references any more.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from service.auditlog import appending
from service.auditlog.events import AuditEvent, EventType
from service.clock import Clock, utc_now
from service.crypto.kek import FileKeyring, KeyEncryptionKey, WrappedKey, add_active_key, remove_keys
from service.store import datakeys, db

log = logging.getLogger("handover.crypto")


@dataclass(frozen=True)
class RotationReport:
    new_kek_id: str
    retired_kek_ids: tuple[str, ...]
    rewrapped: int


@dataclass(frozen=True)
class PurgeReport:
    active_kek_id: str
    rewrapped: int
    removed_kek_ids: tuple[str, ...]
    kept_kek_ids: tuple[str, ...]


async def rewrap_data_keys(
    pool: asyncpg.Pool, kek: KeyEncryptionKey, *, batch: int = 500, clock: Clock = utc_now
) -> int:
    """Re-wrap every data key not under `kek`'s current KEK; returns how many. Safe beside running services and
    other re-wrappers (rows are locked and skipped). Raises KeyUnavailableError if a needed KEK is missing."""
    total = 0
    while True:
        target = kek.kek_id
        async with db.transaction(pool) as conn:
            rows = await datakeys.keys_not_under(conn, target, limit=batch)
            for row in rows:
                context = row.message_id.bytes
                data_key = await kek.unwrap(WrappedKey(row.kek_id, row.wrapped_key), context)
                wrapped = await kek.wrap(data_key, context)
                await datakeys.replace_wrapped_key(conn, row.message_id, wrapped.kek_id, wrapped.wrapped, now=clock())
        total += len(rows)
        if len(rows) < batch:
            return total


async def rotate_kek(kek_file: Path, pool: asyncpg.Pool, *, clock: Clock = utc_now) -> RotationReport:
    """Add a new active KEK to `kek_file` and re-wrap every data key under it (audited as a key change)."""
    new_id, retired = add_active_key(kek_file)
    rewrapped = await rewrap_data_keys(pool, FileKeyring(kek_file), clock=clock)
    async with db.transaction(pool) as conn:
        await appending.append_event(
            conn,
            AuditEvent(
                type=EventType.KEY_CHANGED,
                outcome="rotated",
                actor="hub",
                at=clock(),
                details={"owner": "hub-kek", "kid": new_id, "change": "rotate", "status": "active"},
            ),
        )
    log.info("key-encryption key rotated", extra={"count": rewrapped})
    return RotationReport(new_id, retired, rewrapped)


async def purge_retired_keks(kek_file: Path, pool: asyncpg.Pool, *, clock: Clock = utc_now) -> PurgeReport:
    """Re-wrap any data key still under a retired KEK, then remove retired KEKs that nothing references."""
    keyring = FileKeyring(kek_file)
    rewrapped = await rewrap_data_keys(pool, keyring, clock=clock)
    active, *retired = keyring.kek_ids()
    async with db.connection(pool) as conn:
        still_used = set(await datakeys.kek_ids_in_use(conn)) & set(retired)
    removable = set(retired) - still_used
    if removable:
        remove_keys(kek_file, removable)
    return PurgeReport(active, rewrapped, tuple(sorted(removable)), tuple(sorted(still_used)))
