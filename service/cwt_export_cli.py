"""`handover export cwt|cosd --from --to FILE`: the cancer extracts as CSV for a spreadsheet (UTF-8 with a byte
order mark, so Excel reads the names right), one row per pathway, pseudonymised unless a governance user asks for
`--identifiable` with `--reason` and their staff token (`--staff-token` or HANDOVER_STAFF_TOKEN).

Parse arguments, check who asks, call service/episodes/cwt_extracts.py, show a progress bar. The file appears
whole or not at all (written beside FILE, then renamed).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import tempfile
from collections.abc import Callable, Coroutine
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from service.clock import utc_now
from service.config import Settings
from service.crypto.vault import open_vault
from service.episodes.cwt_extracts import ExtractRequest, IdentifiableRequest, checked_request, write_extract
from service.episodes.cwt_report import names_from
from service.errors import Code, HandoverError
from service.registry import load_registry
from service.staff import StaffIdentityProvider
from service.store import db

STAFF_TOKEN_ENV = "HANDOVER_STAFF_TOKEN"  # noqa: S105 - the name of an environment variable, not a secret
WithDatabase = Callable[[Settings, Callable[[str], Coroutine[Any, Any, int]]], int]
console = Console(stderr=True)

_HELP = {
    "cwt": "the Cancer Waiting Times extract: one row per pathway, columns named after the CWT and IPT data items",
    "cosd": "the COSD extract: one row per pathway, columns headed by COSD item numbers (CR0230, CR0430, CR1370 …)",
}


def add_export_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], with_database: WithDatabase
) -> None:
    export = commands.add_parser("export", help="the national cancer extracts (CSV)").add_subparsers(
        title="export commands"
    )
    for kind, text in _HELP.items():
        command = export.add_parser(kind, help=text, description=f"{text}. Pseudonymised unless --identifiable.")
        command.add_argument("--from", dest="start", required=True, type=_date, help="first day, YYYY-MM-DD")
        command.add_argument("--to", dest="end", required=True, type=_date, help="last day (inclusive), YYYY-MM-DD")
        command.add_argument("file", type=Path, help="the CSV file to write")
        command.add_argument(
            "--identifiable",
            action="store_true",
            help="NHS number, local patient identifier and date of birth instead of the pseudonym (governance only)",
        )
        command.add_argument("--reason", default=None, help="why you need patient identity (kept in the audit log)")
        command.add_argument(
            "--staff-token", default=None, help=f"your governance staff token (default: ${STAFF_TOKEN_ENV})"
        )
        command.set_defaults(run=functools.partial(_cmd_export, with_database), kind=kind)


def _date(text: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def _cmd_export(with_database: WithDatabase, args: argparse.Namespace, settings: Settings) -> int:
    if args.start > args.end:
        console.print("[red]--from must not be after --to[/]")
        return 2
    try:
        identifiable = _identifiable(args, settings)
    except HandoverError as err:
        console.print(f"[red]{escape(err.text)}[/]")
        return 2
    request = ExtractRequest(args.kind, args.start, args.end, identifiable)
    return with_database(settings, lambda dsn: export_to_file(dsn, settings, request, args.file))


def _identifiable(args: argparse.Namespace, settings: Settings) -> IdentifiableRequest | None:
    token = args.staff_token or os.environ.get(STAFF_TOKEN_ENV)
    if not args.identifiable:
        if args.reason is not None:
            raise _usage("--reason goes with --identifiable; without it the extract is pseudonymised")
        return None
    if not token:
        raise _usage(f"an identifiable extract needs your governance staff token: --staff-token or ${STAFF_TOKEN_ENV}")
    if args.reason is None:
        raise _usage("an identifiable extract needs --reason: why you need patient identity (it is audited)")
    provider = StaffIdentityProvider.load(settings.staff_jwks_path, settings.keys_dir, settings.staff_issuer)
    reader = provider.verify(token, now=utc_now())
    return checked_request(reader, args.reason)


def _usage(text: str) -> HandoverError:
    return HandoverError(Code.BAD_HEADER, text)


async def export_to_file(dsn: str, settings: Settings, request: ExtractRequest, target: Path) -> int:
    """Write the extract to `target` (replaced whole only when complete); exit code 0, or 1 if the hub's keys
    cannot be used."""
    name_of = names_from(load_registry(settings.network_path))
    pool = await db.create_pool(dsn, max_size=2)
    try:
        vault = await open_vault(pool, settings.kek_path, create_if_missing=False)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}-", dir=target.parent)
        try:
            with (
                os.fdopen(fd, "w", encoding="utf-8-sig", newline="") as out,
                Progress(
                    TextColumn(f"{request.kind} extract"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeRemainingColumn(),
                    console=console,
                    transient=True,
                    disable=not sys.stderr.isatty(),
                ) as progress,
            ):
                task = progress.add_task("reading", total=None)
                rows = await write_extract(
                    pool,
                    vault,
                    request,
                    out,
                    name_of=name_of,
                    clock=utc_now,
                    progress=lambda done, total: progress.update(task, completed=done, total=total),
                )
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
    except HandoverError as err:
        console.print(f"[red]{escape(err.text)}[/]")
        return 1
    finally:
        await pool.close()
    mode = "identifiable, audited" if request.identifiable is not None else "pseudonymised"
    console.print(f"wrote {rows} pathway(s), {request.start} to {request.end}, to {target} ({mode})")
    return 0
