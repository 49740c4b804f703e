"""The checkpoint writer: signs audit checkpoints as C2SP signed notes (the format, shared with the verifier, is
service/identity/notes.py) and stores them.

`CheckpointSigner` signs a new checkpoint when the log has grown and either `interval_seconds` have passed
since this signer last signed or `max_entries` entries arrived, and never re-signs a stored size with another
root (see `service.store.checkpoints.insert_checkpoint`). Stored times never go backwards.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

import asyncpg

from service.auditlog.tree import AuditIntegrityError, AuditTree
from service.background import run_forever
from service.clock import Clock, utc_now
from service.identity.notes import NoteSigner
from service.store import audit_reads, db
from service.store import checkpoints as store
from service.store.checkpoints import ConflictingCheckpointError, StoredCheckpoint

log = logging.getLogger("handover.audit.checkpoints")


class PublishedRecord(Protocol):
    """The record outside the database of what was published (`service.auditlog.published`)."""

    def check(self, log_size: int, root_at: Callable[[int], bytes]) -> None: ...

    def record(self, note: str, tree_size: int) -> None: ...


class CheckpointSigner:
    """Signs checkpoints of the audit log held in `tree` (the process's mirror) with `signer`.

    Arguments: the pool, the tree, the note signer (or a function giving the one to use now, so that a rotated
    hub key signs from the moment it is active; each stored checkpoint records its signer's kid), the longest
    wait between checkpoints while entries arrive, the entry count that triggers one sooner, a clock for the
    stored signing times, and the record of published checkpoints kept outside the database (signing is
    refused when the log contradicts it: see `service.auditlog.published`).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        tree: AuditTree,
        signer: NoteSigner | Callable[[], NoteSigner],
        *,
        interval_seconds: float,
        max_entries: int = 1000,
        clock: Clock = utc_now,
        published: PublishedRecord | None = None,
    ) -> None:
        self._pool, self._tree, self._signer = pool, tree, signer
        self._published = published
        self._interval, self._max_entries, self._clock = interval_seconds, max_entries, clock
        self._last_signed = float("-inf")

    async def sign_if_due(self, *, force: bool = False) -> StoredCheckpoint | None:
        """Sign and store a checkpoint of the whole log if one is due (or `force` and the log grew).

        Returns the stored checkpoint, None when none was due. Raises AuditIntegrityError when the stored
        log contradicts the latest checkpoint, ConflictingCheckpointError on a fork, HandoverError
        (unavailable) when the store is down.
        """
        async with db.transaction(self._pool) as conn:
            await store.lock_checkpoints(conn)
            latest = await store.latest_checkpoint(conn)
            size = await audit_reads.log_size(conn)
            if not self._due(latest, size, force):
                return None
            await self._tree.sync(conn, up_to=size)
            if latest is not None:
                await self._tree.check_root(conn, latest.tree_size, latest.root_hash)
            if (published := self._published) is not None:  # what was published outside this database
                await self._tree.answer(conn, lambda: published.check(size, self._tree.tree.root))
            root = await self._tree.root(conn, size)
            now = self._clock()
            signed_at = now if latest is None else max(now, latest.signed_at)
            signer = self._signer() if callable(self._signer) else self._signer
            note = signer.sign(size, root)
            stored = await store.insert_checkpoint(conn, StoredCheckpoint(size, root, signed_at, signer.kid, note))
        self._last_signed = time.monotonic()
        if self._published is not None:
            self._published.record(stored.note, stored.tree_size)
        log.info("audit checkpoint signed", extra={"tree_size": stored.tree_size})
        return stored

    async def run(self) -> None:
        """Sign checkpoints until cancelled; stops (logging why) if the log's integrity fails. Any other fault (the
        store down, a deadlock, a bug) costs one pass: logged, counted and retried (service/background.py)."""
        integrity_failed = asyncio.Event()

        async def one_pass() -> None:
            try:
                await self.sign_if_due()
            except (AuditIntegrityError, ConflictingCheckpointError):
                log.critical("audit log integrity failure: checkpoint signing stopped", exc_info=True)
                integrity_failed.set()  # never sign over a log that contradicts what was signed

        await run_forever(
            "audit-checkpoint-signer", one_pass, interval=min(1.0, self._interval), until=integrity_failed
        )

    def _due(self, latest: StoredCheckpoint | None, size: int, force: bool) -> bool:
        if latest is None:
            return True
        if size <= latest.tree_size:
            return False
        waited = time.monotonic() - self._last_signed
        return force or size - latest.tree_size >= self._max_entries or waited >= self._interval
