"""The cancer waiting times commands: `handover cwt allocate` (offline breach allocation of a JSON list of
pathways), and the registration of `handover export cwt|cosd` (service/cwt_export_cli.py).

Parse arguments, call the library, print: the allocation is service/episodes/cwt_allocation.py. `add_commands`
is all service/cli.py calls.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from service import cwt_export_cli
from service.config import Settings
from service.episodes.cwt_allocation import PathwayInputError, allocate, parse_pathway
from service.errors import HandoverError
from service.strictjson import unique_members

WithDatabase = cwt_export_cli.WithDatabase


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser], with_database: WithDatabase) -> None:
    """Register `cwt allocate` and `export cwt|cosd`; `with_database` runs a coroutine on the hub's database."""
    cwt = commands.add_parser("cwt", help="cancer waiting times").add_subparsers(title="cwt commands")
    allocate_cmd = cwt.add_parser(
        "allocate", help="breach allocation of a JSON list of pathways (offline): the same list, allocated"
    )
    allocate_cmd.add_argument("file", nargs="?", default="-", help="JSON file, or - for standard input (default)")
    allocate_cmd.set_defaults(run=_cmd_allocate)
    cwt_export_cli.add_export_commands(commands, with_database)


def _cmd_allocate(args: argparse.Namespace, settings: Settings) -> int:
    return allocate_command(args.file, sys.stdin, sys.stdout, sys.stderr)


def allocate_command(source: str, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """Read the pathways from `source` (a path, or "-" for `stdin`), write them allocated to `stdout`: 0. Bad
    input: one line per bad item on `stderr` naming its id and field, nothing on `stdout`, 2."""
    try:
        text = stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        stderr.write(f"input: cannot read {source}: {getattr(err, 'strerror', None) or err}\n")
        return 2
    try:
        items = json.loads(text, object_pairs_hook=unique_members, parse_constant=_refuse_constant)
    except (ValueError, HandoverError) as err:
        stderr.write(f"input: not JSON: {err}\n")
        return 2
    if not isinstance(items, list):
        stderr.write("input: not a JSON list of pathways\n")
        return 2
    allocated: list[dict[str, Any]] = []
    bad: list[str] = []
    for position, item in enumerate(items):
        try:
            pathway = parse_pathway(item, position)
        except PathwayInputError as err:
            bad.append(f"{_one_line(err.item_id)}: {err.field}: {err.problem}")
            continue
        allocated.append({**item, **allocate(pathway).as_json()})
    if bad:
        stderr.write("".join(f"{line}\n" for line in bad))
        return 2
    stdout.write(json.dumps(allocated, indent=2) + "\n")
    return 0


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _one_line(text: str) -> str:
    """`text` with control characters shown as "?", so one bad item is one line on stderr whatever its id."""
    return "".join("?" if ord(c) < 32 or ord(c) == 127 else c for c in text)
