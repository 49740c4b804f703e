"""The `handover` command, one module per command group: parse arguments, call the library, print (rich).

serve.py (serve, demo), keys.py (keys, staff token), messages.py (send, validate, verify), hl7.py (hl7 listen),
audit.py (audit verify|export, db migrate), meshbridge.py (mesh-bridge), cwt.py and cwt_export.py (cwt allocate,
export cwt|cosd); running.py is what they share. This package is the composition root: it alone may import
`adapters/` (for `demo`, `send`, `validate`, `verify` and `hl7`), which in turn depend on `service/`.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from service.cli import audit, cwt, hl7, keys, meshbridge, messages, serve
from service.cli.running import with_database
from service.config import Settings
from service.crypto.kek import KeyUnavailableError
from service.errors import ConfigError
from service.identity.registry import RegistryError


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        result: int = args.run(args, Settings.from_env())
    except (ConfigError, RegistryError, KeyUnavailableError) as err:
        # Set-up a person can fix (a setting, the registry file, the key-encryption key): a sentence, not a traceback.
        print(f"handover: {err}", file=sys.stderr)
        return 2
    return result


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds `finally` blocks, so an embedded cluster we started is stopped


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="handover", description="Secure FHIR messaging for NHS patient handover")
    commands = parser.add_subparsers(title="commands")
    serve.add_commands(commands)
    keys.add_commands(commands)
    messages.add_commands(commands)
    hl7.add_commands(commands)
    messages.add_file_checks(commands)
    audit.add_commands(commands)
    meshbridge.add_commands(commands)
    audit.add_database_commands(commands)
    cwt.add_commands(commands, with_database)  # `cwt` and `export`
    return parser
