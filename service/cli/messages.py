"""`handover send`, `handover validate` and `handover verify`: one message file, signed and posted, checked
against the profiles offline, or its signature checked against the registry."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from rich.console import Console

from service.cli.running import console
from service.config import Settings


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `send`; `validate` and `verify` are `add_file_checks` (they follow `hl7` in the help)."""
    _add_send(commands)


def add_file_checks(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `validate` and `verify`."""
    check = commands.add_parser("validate", help="check message files against the Handover profiles (offline)")
    check.add_argument("files", nargs="+", type=Path, metavar="FILE", help="message Bundle JSON files")
    check.set_defaults(run=_cmd_validate)

    verify = commands.add_parser("verify", help="check a signed message or hub receipt FILE against the registry")
    verify.add_argument("file", type=Path, help="a signed Bundle (JSON)")
    verify.set_defaults(run=_cmd_verify)


def _add_send(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    send = commands.add_parser(
        "send", help="sign FILE with a trust's dev key as a new message, post it, print the receipt (stdout)"
    )
    send.add_argument("--as", dest="ods", required=True, help="ODS code of the sending trust")
    send.add_argument("--url", default=None, help="hub base URL (default: http://HANDOVER_LISTEN)")
    send.add_argument(
        "--as-is",
        action="store_true",
        help="send the file's own Bundle.timestamp, Bundle.identifier and MessageHeader.id (default: new ones)",
    )
    send.add_argument("file", type=Path)
    send.set_defaults(run=_cmd_send)


def _cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    from adapters.send_cli import SendOrder, send_file

    base = args.url or f"http://{settings.host}:{settings.port}"
    order = SendOrder(args.file, args.ods, base, settings.keys_dir, settings.network_path, as_is=args.as_is)
    return asyncio.run(send_file(order, lambda line: console.print(line, markup=False, soft_wrap=True)))


def _cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    from adapters.validate_cli import validate_files

    return validate_files(args.files, Console())


def _cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    from adapters.verify import render_report, verify_file
    from service.identity.registry import load_registry

    report = verify_file(args.file, load_registry(settings.network_path))
    Console().print(render_report(report))
    return 0 if report.valid else 1
