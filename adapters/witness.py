"""A witness of the hub's audit log: keep every signed checkpoint seen, and prove each new one extends the last.

A trust (or anyone) that runs `Witness.observe()` now and then holds the hub to one history: each checkpoint's
signature is checked with the registry's hub keys, and a newer checkpoint must come with an RFC 9162 consistency
proof from the last one kept. A smaller tree, a different root for the same size or a proof that does not verify
raises WitnessError, and nothing is stored. Checkpoints are kept as files (written to a temporary name, fsynced,
renamed), so the witness's memory survives restarts.
"""

from __future__ import annotations

import base64
from pathlib import Path

import aiohttp

from adapters.durable import write_atomically
from service.auditlog.verifier import verify_consistency
from service.identity.notes import Checkpoint, CheckpointError, hub_note_keys, log_origin, verify_checkpoint
from service.identity.registry import Registry


class WitnessError(Exception):
    """The hub's audit log is not consistent with what this witness saw before, or a checkpoint is not the hub's."""


class Witness:
    """Checkpoints of the hub at `base_url`, verified with `registry`'s hub keys and kept under `directory`.

    Example::

        witness = Witness(session, "https://hub.example", registry, Path("var/witness"))
        checkpoint = await witness.observe()   # raises WitnessError if the hub rewrote its history
        print(checkpoint.tree_size)
    """

    def __init__(self, session: aiohttp.ClientSession, base_url: str, registry: Registry, directory: Path) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._keys = hub_note_keys(log_origin(registry.network), registry.hub_keys)
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def latest(self) -> Checkpoint | None:
        """The newest checkpoint kept (re-verified from disk), or None before the first observation."""
        path = self.directory / "latest.note"
        if not path.exists():
            return None
        return verify_checkpoint(path.read_text("utf-8"), self._keys)

    async def observe(self) -> Checkpoint:
        """Fetch the hub's latest checkpoint, check its signature and its consistency with the last one kept,
        keep it, and return it."""
        async with self._session.get(f"{self._base}/audit/checkpoint") as resp:
            resp.raise_for_status()
            note = await resp.text()
        try:
            checkpoint = verify_checkpoint(note, self._keys)
        except CheckpointError as err:
            raise WitnessError(f"the checkpoint is not signed by the hub: {err}") from err
        previous = self.latest()
        if previous is not None:
            await self._check_extends(previous, checkpoint)
        if previous is None or checkpoint.tree_size > previous.tree_size:
            self._keep(f"{checkpoint.tree_size:020d}.note", note)
            self._keep("latest.note", note)
        return checkpoint

    async def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """The hub's RFC 9162 consistency proof between two tree sizes."""
        url = f"{self._base}/audit/proof/consistency"
        async with self._session.get(url, params={"first": str(first), "second": str(second)}) as resp:
            resp.raise_for_status()
            return [base64.b64decode(h) for h in (await resp.json())["hashes"]]

    async def _check_extends(self, previous: Checkpoint, checkpoint: Checkpoint) -> None:
        if checkpoint.origin != previous.origin:
            raise WitnessError("the checkpoint is for another log")
        if checkpoint.tree_size < previous.tree_size:
            raise WitnessError(f"the log shrank from {previous.tree_size} to {checkpoint.tree_size} entries")
        if checkpoint.tree_size == previous.tree_size:
            if checkpoint.root_hash != previous.root_hash:
                raise WitnessError(f"two different roots for tree size {checkpoint.tree_size}")
            return
        if previous.tree_size == 0:
            return  # every tree extends the empty one
        proof = await self.consistency_proof(previous.tree_size, checkpoint.tree_size)
        if not verify_consistency(
            previous.tree_size, checkpoint.tree_size, previous.root_hash, checkpoint.root_hash, proof
        ):
            raise WitnessError(
                f"the tree of {checkpoint.tree_size} entries does not extend the one of {previous.tree_size} seen"
            )

    def _keep(self, name: str, note: str) -> None:
        write_atomically(self.directory / name, note.encode("utf-8"))
