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
import json
import os
from collections.abc import Sequence
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

from service.auditlog.export import CHECKPOINTS, LEAVES, MANIFEST
from service.auditlog.log_check import Divergence, LogCheck, VerifyReport, b64
from service.auditlog.verify_parallel import CHUNK_LEVEL, FastPathDeclined, read_in_parallel
from service.identity.registry import Registry, RegistryError, load_registry
from service.store import audit_reads, db
from service.store import checkpoints as checkpoint_store
from service.store.checkpoints import StoredCheckpoint

BATCH = 10_000


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
    By default (None) one worker per CPU: on two CPUs the parallel reader is 2.2 times as fast as the sequential one
    with its hashing compiled (`treehash.COMPILED`) and 1.3 times without (measured in `bench/audit_verify.py`).
    0 always reads sequentially."""
    if workers is None:
        workers = os.cpu_count() or 1
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


def load_inputs(
    options: argparse.Namespace, network: Path | None = None
) -> tuple[Registry, list[tuple[str, str]], list[tuple[str, Any]]]:
    """The registry (--network, else `network`, the configured one), trust-held checkpoints and receipts named
    on the command line (OSError/ValueError)."""
    path = options.network or network
    if path is None:
        raise ValueError("give --network: the registry with the hub keys")
    registry = load_registry(path)
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
    parser.add_argument(
        "--workers",
        type=_workers,
        default=None,
        metavar="N",
        help="processes reading the database's log (default: one per CPU; 0: one sequential reader)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _workers(text: str) -> int:
    count = int(text)
    if count < 0:
        raise argparse.ArgumentTypeError("0 or more")
    return count


async def verify_command(
    args: argparse.Namespace, dsn: str | None, console: Console, *, network: Path | None = None
) -> int:
    """Run `handover audit verify` with parsed `args` against `dsn` (ignored with --export); print; exit code.
    `network` is the configured registry, used without --network (the command passes HANDOVER_NETWORK's)."""
    try:
        registry, trusted, receipts = load_inputs(args, network)
    except (OSError, ValueError, RegistryError) as err:
        console.print(f"[red]cannot read the inputs:[/] {err}")
        return 2
    shown = None if args.no_progress else console
    if args.export is not None:
        report = verify_export(args.export, registry, trusted, receipts, console=shown)
    elif dsn is not None:
        report = await verify_database(dsn, registry, trusted, receipts, console=shown, workers=args.workers)
    else:
        console.print("[red]give --database-url or --export[/]")
        return 2
    return print_report(report, console)


def print_report(report: VerifyReport, console: Console) -> int:
    """Print the outcome (the first divergence first); 0 if everything held, else 1."""
    console.print(
        f"log: {report.tree_size} entries, root {b64(report.root)}; checked {report.checkpoints} checkpoint(s), "
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
