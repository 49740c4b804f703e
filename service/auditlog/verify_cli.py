"""`handover audit verify`: check the audit log offline, from a database or from an export directory.

Every leaf's hash is recomputed from its bytes and compared with the stored one; the indexes must be dense;
the root is recomputed (with `verifier.py`, which shares no code with the writer) at every size that a
checkpoint names. Each stored checkpoint must carry a valid signature by a hub key of the registry given,
agree with its stored size and root, and follow the previous one (larger, no earlier); because every
checkpoint's root is recomputed from the same leaves, each is also consistent with the one before. Checkpoints
kept by trusts (``--checkpoint FILE``) must verify and match the log at their size: a log rewritten and
re-signed, or restored from an older backup, fails here. Receipts (``--receipt FILE``) must be signed by the
hub and name the leaf hash, message and payload digest found at their audit index.

Key policy: a checkpoint signed by an active or retiring hub key is accepted (rotation keeps history
verifiable); one signed by a revoked key only if its stored signing time is before the revocation (the note
carries no time, so a trust-held checkpoint signed by a revoked key is not accepted).

The result is a `VerifyReport`; exit status 0 only if nothing diverged.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import bisect
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from service.auditlog import verifier
from service.auditlog.checkpoints import CheckpointError, Keyring, hub_note_keys, log_origin, verify_checkpoint
from service.auditlog.export import CHECKPOINTS, LEAVES, MANIFEST
from service.auditlog.verify_parallel import CHUNK_LEVEL, ChunkResult, FastPathDeclined, read_in_parallel
from service.config import Settings
from service.errors import HandoverError
from service.receipts import receipt_parameters
from service.registry import Registry, RegistryError, load_registry
from service.signing import verify_bundle_signature
from service.store import audit_reads, db
from service.store import checkpoints as checkpoint_store
from service.store.checkpoints import StoredCheckpoint

BATCH = 10_000
PARALLEL_MIN_CPUS = 4


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
                        "leaf-hash", first + offset, f"{_b64(claimed)} (stored)", f"{_b64(digest)} (recomputed)"
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
                        f"root {_b64(root)}",
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
                f"stored size {stored.tree_size}, root {_b64(stored.root_hash)}",
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
                    _b64(expected) + f" ({label})",
                    _b64(found) + " (recomputed)",
                    f"the change lies in entries {self._last_good}..{size - 1}",
                )
        if matched:
            self._last_good = size

    def _check_claim(self, index: int, leaf: bytes, digest: bytes) -> None:
        claim = self._claims[index]
        if digest != claim.leaf_hash:
            self._diverge("receipt", index, _b64(claim.leaf_hash) + f" ({claim.label})", _b64(digest))
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


async def verify_database(
    dsn: str,
    registry: Registry,
    trusted: Sequence[tuple[str, str]],
    receipts: Sequence[tuple[str, Any]],
    *,
    console: Console | None = None,
    workers: int | None = None,
    chunk_level: int = CHUNK_LEVEL,
) -> VerifyReport:
    """Check the log in the database at `dsn`, read as one consistent snapshot: in parallel by `workers`
    processes when the log is dense and large enough, else sequentially (which names the first missing index).
    By default (None) the parallel reader is used on machines with at least PARALLEL_MIN_CPUS CPUs, one worker per
    CPU: with fewer, the server and the workers share too few cores and one sequential reader is faster (measured
    in `bench/audit_verify.py`). 0 always reads sequentially."""
    if workers is None:
        workers = cpus if (cpus := os.cpu_count() or 1) >= PARALLEL_MIN_CPUS else 0
    conn = await db.connect(dsn)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            stored = await checkpoint_store.all_checkpoints(conn)
            check = LogCheck(registry, stored, trusted, receipts)
            with _progress(console) as progress:
                task = progress.add_task("verifying", total=await audit_reads.log_size(conn))
                advance = partial(progress.advance, task)
                try:
                    if workers != 0 and await read_in_parallel(
                        conn, dsn, check, workers=workers, level=chunk_level, advance=advance
                    ):
                        return check.finish()
                except FastPathDeclined:  # start again, in the same snapshot, with the sequential reader
                    check = LogCheck(registry, stored, trusted, receipts)
                    progress.reset(task)
                batches = aiter(audit_reads.leaf_batches(conn, batch=BATCH))
                pending = asyncio.ensure_future(anext(batches, None))
                try:
                    while (rows := await pending) is not None:
                        # Read the next batch while this one is hashed: the server and socket work meanwhile.
                        pending = asyncio.ensure_future(anext(batches, None))
                        await asyncio.to_thread(check.consume, rows)
                        progress.advance(task, len(rows))
                finally:
                    pending.cancel()
    finally:
        await conn.close()
    return check.finish()


def verify_export(
    directory: Path,
    registry: Registry,
    trusted: Sequence[tuple[str, str]],
    receipts: Sequence[tuple[str, Any]],
    *,
    console: Console | None = None,
) -> VerifyReport:
    """Check a directory written by `handover audit export`."""
    stored = [_stored_checkpoint(json.loads(line)) for line in _lines(directory / CHECKPOINTS)]
    manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8")) if (directory / MANIFEST).exists() else {}
    check = LogCheck(registry, stored, trusted, receipts)
    with _progress(console) as progress, (directory / LEAVES).open(encoding="utf-8") as leaves:
        task = progress.add_task("verifying", total=manifest.get("tree_size"))
        batch: list[tuple[int, bytes, bytes]] = []
        for number, line in enumerate(leaves):
            try:
                row = json.loads(line)
                batch.append((row["index"], base64.b64decode(row["leaf"]), base64.b64decode(row["leaf_hash"])))
            except (ValueError, KeyError, TypeError, binascii.Error):
                check.consume(batch)
                check.report.divergences.append(Divergence("export-format", number, "an entry line", "unreadable"))
                batch = []
                break
            if len(batch) == BATCH:
                check.consume(batch)
                progress.advance(task, len(batch))
                batch = []
        check.consume(batch)
        progress.advance(task, len(batch))
    return check.finish()


def load_inputs(options: argparse.Namespace) -> tuple[Registry, list[tuple[str, str]], list[tuple[str, Any]]]:
    """The registry, trust-held checkpoints and receipts named on the command line (OSError/ValueError)."""
    registry = load_registry(options.network or Settings.from_env().network_path)
    trusted = [(f"trusted checkpoint {p}", p.read_text(encoding="utf-8")) for p in options.checkpoint]
    receipts = [(f"receipt {p}", json.loads(p.read_text(encoding="utf-8"))) for p in options.receipt]
    return registry, trusted, receipts


def add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--database-url", default=None, help="PostgreSQL DSN (default: HANDOVER_DATABASE_URL)")
    source.add_argument("--export", type=Path, default=None, metavar="DIR", help="a `handover audit export` dir")
    parser.add_argument(
        "--network", type=Path, default=None, help="registry with the hub keys (default: HANDOVER_NETWORK)"
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a checkpoint note a trust kept (repeatable)",
    )
    parser.add_argument(
        "--receipt",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a receipt (the 202 body) to check (repeatable)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


async def verify_command(args: argparse.Namespace, dsn: str | None, console: Console) -> int:
    """Run `handover audit verify` with parsed `args` against `dsn` (ignored with --export); print; exit code."""
    try:
        registry, trusted, receipts = load_inputs(args)
    except (OSError, ValueError, RegistryError) as err:
        console.print(f"[red]cannot read the inputs:[/] {err}")
        return 2
    shown = None if args.no_progress else console
    if args.export is not None:
        report = verify_export(args.export, registry, trusted, receipts, console=shown)
    elif dsn is not None:
        report = await verify_database(dsn, registry, trusted, receipts, console=shown)
    else:
        console.print("[red]give --database-url or --export[/]")
        return 2
    return print_report(report, console)


def print_report(report: VerifyReport, console: Console) -> int:
    """Print the outcome (the first divergence first); 0 if everything held, else 1."""
    console.print(
        f"log: {report.tree_size} entries, root {_b64(report.root)}; checked {report.checkpoints} checkpoint(s), "
        f"{report.trusted} trust-held checkpoint(s), {report.receipts} receipt(s)"
    )
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    first = report.first
    if first is None:
        console.print("[green]audit log verified: every leaf, root, checkpoint and receipt holds[/]")
        return 0
    console.print(f"[red]FIRST DIVERGENCE[/] {first.describe()}")
    for other in sorted(report.divergences, key=lambda d: (d.index, d.kind))[1:20]:
        console.print(f"  also: {other.describe()}")
    shorter = [d for d in report.divergences if d.kind == "log-shorter-than-checkpoint"]
    if shorter:  # say what it means: the restore drill in docs/operations.md ends here
        largest = max(d.index for d in shorter)
        console.print(
            f"[red]ROLLED BACK:[/] the log has {report.tree_size} entries but a signed checkpoint covers {largest}: "
            f"{largest - report.tree_size} entries are missing (restored from an older backup, or rolled back)"
        )
    return 1


def _progress(console: Console | None) -> Progress:
    columns = (BarColumn(), MofNCompleteColumn(), TaskProgressColumn(), _RateColumn(), TimeRemainingColumn())
    return Progress(*columns, console=console, disable=console is None, transient=True)


class _RateColumn(ProgressColumn):
    """Entries verified per second, as the bar moves."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f} entries/s" if task.speed else "", style="progress.data.speed")


def _stored_checkpoint(row: dict[str, Any]) -> StoredCheckpoint:
    return StoredCheckpoint(
        int(row["tree_size"]),
        base64.b64decode(row["root_hash"]),
        datetime.fromisoformat(row["signed_at"]),
        str(row["key_id"]),
        str(row["note"]),
    )


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _note_size(note: str) -> int:
    lines = note.split("\n")
    return int(lines[1]) if len(lines) > 1 and lines[1].isdigit() and len(lines[1]) < 19 else -1


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
