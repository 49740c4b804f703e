"""One audit log's check, fed its entries in index order: leaf hashes recomputed and compared, the root recomputed
(with `verifier.py`) at every size a checkpoint names, stored and trust-held checkpoints and receipts checked;
the outcome is a `VerifyReport` of `Divergence`s. `verify_cli` feeds it from a database or an export.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from service.auditlog import verifier
from service.auditlog.verify_parallel import ChunkResult
from service.errors import HandoverError
from service.identity.notes import CheckpointError, Keyring, hub_note_keys, log_origin, verify_checkpoint
from service.identity.registry import Registry
from service.identity.signing import verify_bundle_signature
from service.receipts import receipt_parameters
from service.store.checkpoints import StoredCheckpoint


@dataclass(frozen=True)
class Divergence:
    """One thing that does not hold: what, at which entry index (or tree size), expected and found."""

    kind: str
    index: int
    expected: str
    found: str
    detail: str = ""

    def describe(self) -> str:
        where = "tree size" if self.kind.startswith(("checkpoint", "trusted", "log")) else "index"
        text = f"{self.kind} at {where} {self.index}: expected {self.expected}, found {self.found}"
        return f"{text} ({self.detail})" if self.detail else text


@dataclass
class VerifyReport:
    tree_size: int = 0
    root: bytes = b""
    checkpoints: int = 0
    trusted: int = 0
    receipts: int = 0
    divergences: list[Divergence] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.divergences

    @property
    def first(self) -> Divergence | None:
        return min(self.divergences, key=lambda d: (d.index, d.kind)) if self.divergences else None


@dataclass(frozen=True)
class _Claim:
    label: str
    leaf_hash: bytes
    message_id: str
    sha256: str


class LogCheck:
    """Checks one log: feed it every entry in index order (`consume`), then `finish`.

    Arguments: the registry (hub keys and network name), the stored checkpoints, trust-held checkpoint notes
    as (label, text), and receipts as (label, parsed JSON).
    """

    def __init__(
        self,
        registry: Registry,
        stored: Sequence[StoredCheckpoint],
        trusted: Sequence[tuple[str, str]] = (),
        receipts: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self.report = VerifyReport()
        self._registry = registry
        self._origin = log_origin(registry.network)
        self._keys: Keyring = hub_note_keys(self._origin, registry.hub_keys)
        self._targets: dict[int, list[tuple[str, bytes]]] = {}
        self._claims: dict[int, _Claim] = {}
        self._root = verifier.StreamingRoot()
        self._broken = False
        self._last_good = 0
        previous: StoredCheckpoint | None = None
        for checkpoint in sorted(stored, key=lambda c: c.tree_size):
            self._check_stored(checkpoint, previous)
            previous = checkpoint
        for label, note in trusted:
            self._check_trusted(label, note)
        for label, receipt in receipts:
            self._check_receipt(label, receipt)
        self._sizes = sorted(self._targets)
        self._claimed = sorted(self._claims)
        if 0 in self._targets:
            self._compare_roots(0)

    def consume(self, rows: Sequence[Sequence[Any]]) -> None:
        """The next entries as (index, leaf bytes, stored leaf hash), continuing from the last one consumed."""
        if self._broken or not rows:
            return
        root, first = self._root, self._root.size
        indexes = [row[0] for row in rows]
        if indexes[0] != first or indexes[-1] != first + len(rows) - 1:  # indexes only increase (ORDER BY seq)
            gap = next(n for n, index in enumerate(indexes) if index != first + n)
            self._diverge("missing-entry", first + gap, f"entry {first + gap}", f"entry {indexes[gap]} next")
            self._broken, rows = True, rows[:gap]
        leaves = [row[1] for row in rows]
        sha256 = hashlib.sha256
        digests = [sha256(b"\x00" + leaf).digest() for leaf in leaves]
        stored = [row[2] for row in rows]
        if digests != stored:
            for offset, (digest, claimed) in enumerate(zip(digests, stored, strict=True)):
                if digest != claimed:
                    self._diverge(
                        "leaf-hash", first + offset, f"{b64(claimed)} (stored)", f"{b64(digest)} (recomputed)"
                    )
        end, done = first + len(digests), first
        for size in self._sizes[bisect.bisect_right(self._sizes, first) : bisect.bisect_right(self._sizes, end)]:
            root.extend(digests[done - first : size - first])
            done = size
            self._compare_roots(size)
        root.extend(digests[done - first :])
        for index in self._claimed[bisect.bisect_left(self._claimed, first) : bisect.bisect_left(self._claimed, end)]:
            self._check_claim(index, leaves[index - first], digests[index - first])

    @property
    def target_sizes(self) -> Sequence[int]:
        return self._sizes

    @property
    def claimed_indexes(self) -> Sequence[int]:
        return self._claimed

    def consume_chunk(self, chunk: ChunkResult) -> None:
        """The next chunk of entries as the fast path (verify_parallel) read and hashed it, in index order."""
        root = self._root
        if chunk.start != root.size:
            raise ValueError(f"chunk at {chunk.start} after {root.size} entries")
        for size, peaks in sorted(chunk.at_sizes.items()):
            self._compare_roots(size, root.root(peaks))
        for index, (leaf, digest) in sorted(chunk.leaves.items()):
            self._check_claim(index, leaf, digest)
        remaining = chunk.rows
        for peak in chunk.peaks:  # largest first: one per 1-bit of the chunk's row count
            level = remaining.bit_length() - 1
            root.add_subtree(peak, level)
            remaining -= 1 << level

    def finish(self) -> VerifyReport:
        size = self._root.size
        self.report.tree_size, self.report.root = size, self._root.root()
        for target_size, expectations in sorted(self._targets.items()):
            if target_size > size:
                for label, root in expectations:
                    self._diverge(
                        "log-shorter-than-checkpoint",
                        target_size,
                        f"{target_size} entries ({label})",
                        f"{size}",
                        f"root {b64(root)}",
                    )
        for index, claim in sorted(self._claims.items()):
            if index >= size:
                self._diverge("receipt", index, f"entry {index} ({claim.label})", f"a log of {size} entries")
        return self.report

    def _check_stored(self, stored: StoredCheckpoint, previous: StoredCheckpoint | None) -> None:
        self.report.checkpoints += 1
        where = stored.tree_size
        if previous is not None and stored.signed_at < previous.signed_at:
            self._diverge("checkpoint-time", where, f"signed at or after {previous.signed_at}", f"{stored.signed_at}")
        checkpoint = self._verified(f"stored checkpoint {where}", stored.note, stored.signed_at, "checkpoint-signature")
        if checkpoint is None:
            return
        if (checkpoint.tree_size, checkpoint.root_hash) != (stored.tree_size, stored.root_hash):
            self._diverge(
                "checkpoint-record",
                where,
                f"the signed note's size and root ({checkpoint.tree_size})",
                f"stored size {stored.tree_size}, root {b64(stored.root_hash)}",
            )
        self._targets.setdefault(checkpoint.tree_size, []).append((f"checkpoint {where}", checkpoint.root_hash))

    def _check_trusted(self, label: str, note: str) -> None:
        self.report.trusted += 1
        checkpoint = self._verified(label, note, None, "trusted-checkpoint")
        if checkpoint is not None:
            self._targets.setdefault(checkpoint.tree_size, []).append((label, checkpoint.root_hash))

    def _verified(self, label: str, note: str, signed_at: datetime | None, kind: str) -> Any:
        try:
            checkpoint = verify_checkpoint(note, self._keys)
        except CheckpointError as err:
            self._diverge(kind, _note_size(note), "a checkpoint signed by a hub key", str(err), label)
            return None
        if checkpoint.origin != self._origin:
            self._diverge(kind, checkpoint.tree_size, f"origin {self._origin}", checkpoint.origin, label)
            return None
        keys = [self._registry.hub_key(kid) for kid in checkpoint.signed_by]
        if not any(k is not None and (k.status != "revoked" or k.verifies_at(signed_at)) for k in keys):
            self._diverge(kind, checkpoint.tree_size, "a signature by a hub key not revoked then", "revoked", label)
            return None
        if signed_at is not None and all(k is not None and k.status == "revoked" for k in keys):
            self.report.warnings.append(f"{label} is signed by a since-revoked key; accepted by its stored time")
        return checkpoint

    def _check_receipt(self, label: str, receipt: Any) -> None:
        self.report.receipts += 1
        try:
            signature = verify_bundle_signature(receipt, self._registry.hub_key)
            params = receipt_parameters(receipt)
            index, leaf_hash = int(params["audit-index"]), base64.b64decode(params["leaf-hash"], validate=True)
            claim = _Claim(label, leaf_hash, str(params["message-id"]), str(params["sha256"]))
        except (HandoverError, KeyError, IndexError, TypeError, ValueError, binascii.Error, StopIteration) as err:
            self._diverge("receipt", -1, "a receipt signed by the hub", type(err).__name__, label)
            return
        if signature.owner_ods != "hub" or signature.key is None or not signature.key.verifies_at(signature.signed_at):
            self._diverge("receipt", index, "a receipt signed by a usable hub key", signature.kid, label)
        elif index in self._claims:
            self.report.warnings.append(f"{label} names audit index {index} like {self._claims[index].label}")
        else:
            self._claims[index] = claim

    def _compare_roots(self, size: int, found: bytes | None = None) -> None:
        if found is None:
            found = self._root.root() if size else verifier.StreamingRoot().root()
        matched = True
        for label, expected in self._targets[size]:
            if expected != found:
                matched = False
                self._diverge(
                    "checkpoint-root",
                    size,
                    b64(expected) + f" ({label})",
                    b64(found) + " (recomputed)",
                    f"the change lies in entries {self._last_good}..{size - 1}",
                )
        if matched:
            self._last_good = size

    def _check_claim(self, index: int, leaf: bytes, digest: bytes) -> None:
        claim = self._claims[index]
        if digest != claim.leaf_hash:
            self._diverge("receipt", index, b64(claim.leaf_hash) + f" ({claim.label})", b64(digest))
            return
        try:
            event = json.loads(leaf)
            found = (str(event.get("message_id")), str(event.get("details", {}).get("payload_sha256")))
        except (ValueError, AttributeError):
            found = ("unreadable leaf", "")
        if found != (claim.message_id, claim.sha256):
            self._diverge("receipt", index, f"message {claim.message_id}, sha256 {claim.sha256}", ", ".join(found))

    def _diverge(self, kind: str, index: int, expected: str, found: str, detail: str = "") -> None:
        self.report.divergences.append(Divergence(kind, index, expected, found, detail))


def _note_size(note: str) -> int:
    lines = note.split("\n")
    return int(lines[1]) if len(lines) > 1 and lines[1].isdigit() and len(lines[1]) < 19 else -1


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
