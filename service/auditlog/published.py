"""The record, kept outside the database, of the largest checkpoint the hub has published or trusts witnessed.

A database restored from an older backup holds a shorter audit log than the checkpoints the hub already handed
out: the entries in between are gone, and signing a checkpoint over the restored log would publish a second,
contradicting history. The database cannot tell (it was restored too), so the hub keeps its own record in a
directory on other storage (``HANDOVER_CHECKPOINT_RECORD_DIR``; see docs/operations.md "Backups and restores"):

* after each checkpoint it signs and stores, it writes the note to ``published.note`` there (atomically, under a
  file lock, only ever replacing it with a larger tree size);
* operators may add the checkpoints trusts kept (``*.note``, e.g. fetched from ``GET /audit/checkpoint`` by a
  witness) to the same directory, which is how a hub whose record was lost learns what it published.

Before signing, `CheckpointSigner` asks for the `floor`: the largest note there whose signature verifies with a
hub key of the registry in service and whose origin is this log's (other files are logged and ignored). If the
log is shorter than the floor, or its root at the floor's size differs, signing is refused with
`ContradictsPublishedCheckpointError` (a `ConflictingCheckpointError`: the signer stops and logs why).
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable
from pathlib import Path

from service.identity.notes import Checkpoint, CheckpointError, Keyring, verify_checkpoint
from service.store.checkpoints import ConflictingCheckpointError

log = logging.getLogger("handover.audit.published")

PUBLISHED = "published.note"
_LOCK = ".lock"


class ContradictsPublishedCheckpointError(ConflictingCheckpointError):
    """The audit log contradicts a checkpoint already published: shorter than it, or another root at its size."""


class PublishedCheckpoints:
    """The record in `directory` for the log `origin`; `keyring` gives the hub keys of the registry in service."""

    def __init__(self, directory: Path, origin: str, keyring: Callable[[], Keyring]) -> None:
        self.directory = directory
        self._origin = origin
        self._keyring = keyring
        self._ignored: set[Path] = set()

    def floor(self) -> tuple[Checkpoint, Path] | None:
        """The largest verified checkpoint of this log in the directory, with its file; None if there is none."""
        best: tuple[Checkpoint, Path] | None = None
        for path in sorted(self.directory.glob("*.note")) if self.directory.is_dir() else []:
            checkpoint = self._read(path)
            if checkpoint is not None and (best is None or checkpoint.tree_size > best[0].tree_size):
                best = (checkpoint, path)
        return best

    def _read(self, path: Path) -> Checkpoint | None:
        """The checkpoint in `path` if it is one of this log's, signed by a hub key of the registry in service."""
        try:
            checkpoint = verify_checkpoint(path.read_text(encoding="utf-8"), self._keyring())
        except (OSError, UnicodeDecodeError, CheckpointError) as err:
            if path not in self._ignored:
                self._ignored.add(path)
                log.warning("checkpoint record ignored", extra={"path": str(path), "error": str(err)})
            return None
        return checkpoint if checkpoint.origin == self._origin else None

    def check(self, log_size: int, root_at: Callable[[int], bytes]) -> None:
        """Raise ContradictsPublishedCheckpointError unless a log of `log_size` entries extends the floor."""
        found = self.floor()
        if found is None:
            return
        floor, path = found
        if log_size < floor.tree_size:
            raise ContradictsPublishedCheckpointError(
                f"the audit log has {log_size} entries, fewer than the {floor.tree_size} of a checkpoint already "
                f"published ({path}): the database was restored from an older backup or rolled back, and "
                f"{floor.tree_size - log_size} entries are missing; refusing to sign a contradicting checkpoint"
            )
        if root_at(floor.tree_size) != floor.root_hash:
            raise ContradictsPublishedCheckpointError(
                f"the audit log's first {floor.tree_size} entries are not those of the checkpoint already published "
                f"({path}): the log was rewritten or restored and has grown again; refusing to sign a fork"
            )

    def record(self, note: str, tree_size: int) -> None:
        """Keep `note` (a checkpoint of `tree_size` just stored) as ``published.note`` unless a larger one is there."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / _LOCK).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # several hub processes on one host share the directory
            target = self.directory / PUBLISHED
            kept = self._read(target) if target.exists() else None
            if kept is not None and kept.tree_size >= tree_size:
                return  # another process recorded a larger one meanwhile; a note that does not verify is replaced
            temporary = target.with_suffix(f".{os.getpid()}.tmp")
            with temporary.open("w", encoding="utf-8") as out:
                out.write(note)
                out.flush()
                os.fsync(out.fileno())
            temporary.replace(target)
            directory = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
