"""The `handover` command: parse arguments, call the library, print (rich).

This is the composition root: it alone may import `adapters/` (for `demo` and `send`), which in turn
depend on `service/`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from aiohttp import web
from rich.console import Console

from service.config import Settings
from service.logs import configure_logging
from service.store.embedded import EmbeddedCluster, ensure_cluster
from service.tls import server_ssl_context, tls_settings_from_env

console = Console(stderr=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    result: int = args.run(args, Settings.from_env())
    return result


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds `finally` blocks, so an embedded cluster we started is stopped


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="handover", description="Secure FHIR messaging for NHS patient handover")
    commands = parser.add_subparsers(title="commands")

    serve = commands.add_parser("serve", help="run the hub (embedded PostgreSQL unless HANDOVER_DATABASE_URL)")
    serve.set_defaults(run=_cmd_serve)

    demo = commands.add_parser("demo", help="play the East Anglia scenario, then keep serving")
    demo.add_argument("--once", action="store_true", help="exit after the scenario: 0 only if every step checked out")
    demo.set_defaults(run=_cmd_demo)

    keys = commands.add_parser("keys", help="network keys").add_subparsers(title="keys commands")
    init = keys.add_parser("init", help="make a dev ES256 key for every participant and the hub")
    init.add_argument("--force", action="store_true", help="replace existing private keys")
    init.set_defaults(run=_cmd_keys_init)
    show = keys.add_parser("show", help="list participants and their public keys")
    show.set_defaults(run=_cmd_keys_show)

    send = commands.add_parser("send", help="sign FILE with a trust's dev key, post it, print the receipt")
    send.add_argument("--as", dest="ods", required=True, help="ODS code of the sending trust")
    send.add_argument("--url", default=None, help="hub base URL (default: http://HANDOVER_LISTEN)")
    send.add_argument("file", type=Path)
    send.set_defaults(run=_cmd_send)

    database = commands.add_parser("db", help="database").add_subparsers(title="db commands")
    migrate = database.add_parser("migrate", help="apply pending migrations")
    migrate.set_defaults(run=_cmd_db_migrate)
    return parser


def _with_database(settings: Settings, body: Callable[[str], Coroutine[Any, Any, int]]) -> int:
    """Run `body(dsn)` on HANDOVER_DATABASE_URL, or on the embedded cluster (stopped again if we started it)."""
    cluster: EmbeddedCluster | None = None
    dsn = settings.database_url
    try:
        if dsn is None:
            cluster = ensure_cluster(settings.var_dir.resolve(), log=lambda line: console.print(f"[dim]{line}[/]"))
            dsn = cluster.dsn
        return asyncio.run(body(dsn))
    except KeyboardInterrupt:
        return 130
    finally:
        if cluster is not None and cluster.started_here:
            console.print("[dim]stopping the embedded PostgreSQL cluster[/]")
            cluster.stop()


async def _serve_until_stopped(
    settings: Settings, dsn: str, after_start: Callable[[], Awaitable[int]] | None, *, exit_after: bool
) -> int:
    from service.app import build_app

    tls = tls_settings_from_env(os.environ)
    ssl_context = server_ssl_context(tls) if tls is not None else None
    runner = web.AppRunner(build_app(settings, dsn), auto_decompress=False, access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await web.TCPSite(runner, settings.host, settings.port, ssl_context=ssl_context).start()
        scheme = "https" if ssl_context is not None else "http"
        mtls = " (client certificates required)" if tls is not None and tls.client_ca is not None else ""
        console.print(f"Handover listening on {scheme}://{settings.host}:{settings.port}{mtls}")
        status = 0
        if after_start is not None:
            status = await after_start()
        if not exit_after:
            await stop.wait()
        return status
    finally:
        await runner.cleanup()


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging()
    return _with_database(settings, lambda dsn: _serve_until_stopped(settings, dsn, None, exit_after=False))


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from adapters.demo import play_scenario, print_report
    from service.keystore import init_keys
    from service.registry import load_registry
    from service.terminology import load_code_system

    configure_logging()
    created = init_keys(settings.network_path, settings.keys_dir).created
    if created:
        console.print(f"made dev keys for {', '.join(created)} in {settings.keys_dir}")

    async def scenario() -> int:
        report = await play_scenario(
            f"http://{settings.host}:{settings.port}",
            load_registry(settings.network_path),
            settings.keys_dir,
            load_code_system("handover-event").url,
        )
        print_report(report, Console())
        if not args.once:
            console.print("serving until Ctrl-C")
        return 0 if report.passed else 1

    return _with_database(settings, lambda dsn: _serve_until_stopped(settings, dsn, scenario, exit_after=args.once))


def _cmd_keys_init(args: argparse.Namespace, settings: Settings) -> int:
    from service.keystore import init_keys

    report = init_keys(settings.network_path, settings.keys_dir, force=args.force)
    for owner in report.created:
        console.print(f"created  {owner}")
    for owner in report.kept:
        console.print(f"kept     {owner} (use --force to replace)")
    return 0


def _cmd_keys_show(args: argparse.Namespace, settings: Settings) -> int:
    from rich.table import Table

    from service.registry import load_registry

    registry = load_registry(settings.network_path)
    table = Table(title=f"Network registry {settings.network_path}")
    for column in ("owner", "name", "role", "kid", "alg", "status"):
        table.add_column(column)
    for key in registry.hub_keys:
        table.add_row("hub", "Handover hub", "hub", key.kid, key.alg, key.status)
    for participant in registry.participants.values():
        for key in participant.keys or ():
            table.add_row(participant.ods, participant.name, participant.role, key.kid, key.alg, key.status)
        if not participant.keys:
            table.add_row(participant.ods, participant.name, participant.role, "(none: run keys init)", "", "")
    Console().print(table)
    return 0


def _cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    import aiohttp

    from adapters.trust_client import TrustClient
    from service.keystore import load_private_jwk
    from service.registry import load_registry

    bundle = json.loads(args.file.read_text(encoding="utf-8"))
    base = args.url or f"http://{settings.host}:{settings.port}"

    async def send() -> int:
        async with aiohttp.ClientSession() as session:
            client = TrustClient(
                session,
                base,
                args.ods,
                load_private_jwk(settings.keys_dir, args.ods),
                load_registry(settings.network_path),
            )
            result = await client.send(client.sign(bundle))
        print(json.dumps(result.body, indent=2))
        console.print(f"HTTP {result.status}" + ("" if result.accepted else f": {', '.join(result.error_codes)}"))
        return 0 if result.accepted else 1

    return asyncio.run(send())


def _cmd_db_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from service.store import db

    async def migrate(dsn: str) -> int:
        applied = await db.migrate(dsn)
        console.print(f"applied {len(applied)} migration(s): {', '.join(m.name for m in applied) or 'none pending'}")
        return 0

    return _with_database(settings, migrate)


if __name__ == "__main__":
    sys.exit(main())
