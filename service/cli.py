"""The `handover` command: parse arguments, call the library, print (rich).

This is the composition root: it alone may import `adapters/` (for `demo` and `send`), which in turn
depend on `service/`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from aiohttp import web
from rich.console import Console

from service import cwt_cli, demo_cli, listening
from service.auditlog import export as audit_export
from service.auditlog import verify_cli
from service.clock import Clock, utc_now
from service.config import ConfigError, Settings
from service.crypto.kek import KeyUnavailableError
from service.logs import configure_logging
from service.registry import RegistryError, load_registry
from service.store import db
from service.store.embedded import EMBEDDED_PG_DIR_ENV, EmbeddedCluster, ensure_cluster, following_port
from service.store.startup import NoPrimaryError
from service.tls import server_ssl_context, tls_settings_from_env
from service.workers import REUSE_PORT_ENV, Supervisor, default_workers, prepare_shared_files

console = Console(stderr=True)
_background: set[asyncio.Task[int]] = set()  # tasks started from signal handlers, kept until done


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

    _add_serve(commands)

    demo_cli.add_command(commands, _with_database, _serve_until_stopped)  # `demo`, in its own module

    keys = commands.add_parser("keys", help="network keys").add_subparsers(title="keys commands")
    init = keys.add_parser("init", help="make a dev ES256 key for every participant and the hub")
    init.add_argument("--force", action="store_true", help="replace existing private keys")
    init.set_defaults(run=_cmd_keys_init)
    show = keys.add_parser("show", help="list participants and their public keys, with key states")
    show.set_defaults(run=_cmd_keys_show)
    rotate = keys.add_parser(
        "rotate", help="new active key for ODS (or hub); the old one verifies only for the overlap"
    )
    rotate.add_argument("ods", help="ODS code of a current participant, or hub")
    rotate.add_argument(
        "--overlap-hours", type=float, default=25.0, help="how long the old key keeps verifying (default 25)"
    )
    rotate.set_defaults(run=_cmd_keys_rotate)
    revoke = keys.add_parser("revoke", help="refuse KID's signatures made from --at on; earlier ones stay valid")
    revoke.add_argument("ods", help="ODS code of the key's owner, or hub")
    revoke.add_argument("kid", help="the key's kid (see `handover keys show`); put -- before a kid starting with -")
    revoke.add_argument(
        "--at", required=True, type=_aware_datetime, help="ISO-8601 instant with a time zone, e.g. 2026-11-24T09:00:00Z"
    )
    revoke.set_defaults(run=_cmd_keys_revoke)
    _add_rotate_kek(keys)

    staff = commands.add_parser("staff", help="staff identity (development)").add_subparsers(title="staff commands")
    token = staff.add_parser("token", help="mint a development staff bearer token")
    token.add_argument("--user", required=True, help="the staff member's user name")
    token.add_argument("--role", required=True, choices=["governance", "ops"])
    token.add_argument("--minutes", type=int, default=60, help="lifetime (at most 12 hours)")
    token.set_defaults(run=_cmd_staff_token)

    _add_send(commands)
    _add_hl7_commands(commands)

    check = commands.add_parser("validate", help="check message files against the Handover profiles (offline)")
    check.add_argument("files", nargs="+", type=Path, metavar="FILE", help="message Bundle JSON files")
    check.set_defaults(run=_cmd_validate)

    verify = commands.add_parser("verify", help="check a signed message or hub receipt FILE against the registry")
    verify.add_argument("file", type=Path, help="a signed Bundle (JSON)")
    verify.set_defaults(run=_cmd_verify)

    audit = commands.add_parser("audit", help="the tamper-evident audit log").add_subparsers(title="audit commands")
    audit_verify = audit.add_parser("verify", help="check the audit log offline: leaves, roots, checkpoints, receipts")
    verify_cli.add_verify_arguments(audit_verify)
    audit_verify.set_defaults(run=_cmd_audit_verify)
    audit_export_cmd = audit.add_parser("export", help="write the audit log to DIR: leaves, checkpoints, AuditEvents")
    audit_export.add_export_arguments(audit_export_cmd)
    audit_export_cmd.set_defaults(run=_cmd_audit_export)

    _add_mesh_bridge(commands)

    _add_database(commands)
    return parser


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


def _add_database(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    database = commands.add_parser("db", help="database").add_subparsers(title="db commands")
    migrate = database.add_parser("migrate", help="apply pending migrations")
    migrate.set_defaults(run=_cmd_db_migrate)
    cwt_cli.add_commands(commands, _with_database)  # `cwt` and `export`, in their own module (issue 24)


def _add_mesh_bridge(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mesh_bridge = commands.add_parser(
        "mesh-bridge", help="read the hub's MESH mailbox into the hub and deliver to MESH-only trusts (HANDOVER_MESH_*)"
    )
    mesh_bridge.set_defaults(run=_cmd_mesh_bridge)


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="run the hub (embedded PostgreSQL unless HANDOVER_DATABASE_URL)")
    serve.add_argument(
        "--workers", type=int, default=None, help="processes serving the one port (default: the number of CPUs)"
    )
    serve.set_defaults(run=_cmd_serve)


def _add_rotate_kek(keys: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rotate_kek = keys.add_parser(
        "rotate-kek", help="new key-encryption key; re-wrap every stored data key under it (payloads unchanged)"
    )
    rotate_kek.add_argument(
        "--purge-retired",
        action="store_true",
        help="instead: re-wrap stragglers and delete retired KEKs nothing uses (run a minute after rotate-kek)",
    )
    rotate_kek.set_defaults(run=_cmd_keys_rotate_kek)


def _with_database(settings: Settings, body: Callable[[str], Coroutine[Any, Any, int]]) -> int:
    """Run `body(dsn)` on HANDOVER_DATABASE_URL, or on the embedded cluster (stopped again if we started it)."""
    cluster: EmbeddedCluster | None = None
    dsn = settings.database_url
    try:
        if dsn is None:
            cluster = ensure_cluster(settings.var_dir.resolve(), log=lambda line: console.print(f"[dim]{line}[/]"))
            dsn = cluster.dsn
            os.environ[EMBEDDED_PG_DIR_ENV] = str(cluster.data_dir.parent)  # for workers started from here
        if os.environ.get(EMBEDDED_PG_DIR_ENV):  # the embedded cluster may come back on another port
            db.follow_moves(dsn, following_port(dsn, Path(os.environ[EMBEDDED_PG_DIR_ENV])))
        return asyncio.run(body(dsn))
    except KeyboardInterrupt:
        return 130
    except (NoPrimaryError, db.SchemaRefusedError) as refused:  # the message says it all: no traceback
        console.print(f"[red]{refused}[/]")
        return 1
    finally:
        if cluster is not None and cluster.started_here:
            console.print("[dim]stopping the embedded PostgreSQL cluster[/]")
            cluster.stop()


async def _serve_until_stopped(
    settings: Settings,
    dsn: str,
    after_start: Callable[[], Awaitable[int]] | None,
    *,
    exit_after: bool,
    clock: Clock = utc_now,
) -> int:
    from service.app import build_app, make_runner

    tls = tls_settings_from_env(os.environ)
    ssl_context = server_ssl_context(tls) if tls is not None else None
    runner = make_runner(build_app(settings, dsn, clock=clock))
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: _reload_registry(runner, settings.network_path))
    try:
        reuse_port = os.environ.get(REUSE_PORT_ENV) == "1" or None
        site = web.TCPSite(runner, settings.host, settings.port, ssl_context=ssl_context, reuse_port=reuse_port)
        try:
            await site.start()
        except OSError as err:  # taken since can_listen looked
            _say_error(listening.explain(settings.host, settings.port, err))
            return 1
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


def _say_error(text: str) -> None:
    console.print(text, style="red", markup=False, soft_wrap=True)  # unwrapped: addresses and names stay whole


def _reload_registry(runner: web.AppRunner, path: Path) -> None:
    """SIGHUP: swap in the edited network registry, or keep the one in service if the file is bad."""
    import logging

    from service.auditlog.recording import record_key_changes
    from service.http.context import SERVICES

    hub = runner.app[SERVICES]
    result = hub.registry.reload(path)
    logging.getLogger("handover.registry").log(logging.INFO if result.ok else logging.ERROR, result.describe())
    task = asyncio.get_running_loop().create_task(
        record_key_changes(hub.pool, result, hub.registry.current, "operator (SIGHUP)", hub.clock)
    )
    _background.add(task)
    task.add_done_callback(_background.discard)


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging()
    workers = default_workers() if args.workers is None else args.workers
    if workers < 1:
        console.print("[red]--workers must be at least 1[/]")
        return 2
    if os.environ.get(REUSE_PORT_ENV) != "1" and not listening.can_listen(settings.host, settings.port, _say_error):
        return 1  # (a worker shares the port its siblings hold: the supervisor looked before starting them)
    load_registry(settings.network_path)  # a registry that cannot serve is said (main) before any database is touched
    if workers == 1:
        return _with_database(settings, lambda dsn: _serve_until_stopped(settings, dsn, None, exit_after=False))

    async def supervise(dsn: str) -> int:
        await prepare_shared_files(settings, dsn)  # once, before any worker starts
        supervisor = Supervisor(workers, dsn, say=lambda line: console.print(f"[dim]{line}[/]"))
        return await supervisor.run()

    console.print(f"Handover listening on http://{settings.host}:{settings.port} with {workers} workers")
    return _with_database(settings, supervise)


def _cmd_mesh_bridge(args: argparse.Namespace, settings: Settings) -> int:
    from service.config import ConfigError
    from service.mesh.settings import MeshSettings

    try:
        from service.mesh.bridge import open_bridge
    except ImportError:
        console.print("[red]the MESH bridge needs the mesh extra: pip install 'handover[mesh]'[/]")
        return 2
    configure_logging()
    try:
        mesh = MeshSettings.from_env()
    except ConfigError as err:
        console.print(f"[red]{err}[/]")
        return 2

    async def run(dsn: str) -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        async with open_bridge(settings, mesh, dsn) as bridge:
            console.print(f"MESH bridge on mailbox {mesh.mailbox} at {mesh.url}; Ctrl-C stops it")
            await bridge.run(stop)
        return 0

    return _with_database(settings, run)


def _cmd_keys_init(args: argparse.Namespace, settings: Settings) -> int:
    from service.crypto.kek import create_kek_file
    from service.keystore import init_keys
    from service.pseudonyms import PSEUDONYM_KEY_FILE, Pseudonymiser
    from service.staff import ensure_dev_staff_key

    report = init_keys(settings.network_path, settings.keys_dir, force=args.force)
    if ensure_dev_staff_key(settings.keys_dir):
        console.print("created  staff identity provider (development)")
    if not settings.kek_path.exists():
        console.print(f"created  key-encryption key {create_kek_file(settings.kek_path)} in {settings.kek_path}")
    if not (settings.keys_dir / PSEUDONYM_KEY_FILE).exists():
        Pseudonymiser.from_keys_dir(settings.keys_dir)  # made here, so a hub given read-only keys can start
        console.print(f"created  pseudonym key in {settings.keys_dir / PSEUDONYM_KEY_FILE}")
    for owner in report.created:
        console.print(f"created  {owner}")
    for owner in report.kept:
        console.print(f"kept     {owner} (use --force to replace)")
    return 0


def _cmd_staff_token(args: argparse.Namespace, settings: Settings) -> int:
    from service.staff import StaffRole, ensure_dev_staff_key, mint_dev_staff_token

    if ensure_dev_staff_key(settings.keys_dir):
        console.print(f"made a development staff identity provider key in {settings.keys_dir}")
    print(mint_dev_staff_token(settings.keys_dir, args.user, StaffRole(args.role), minutes=args.minutes))
    return 0


def _cmd_keys_show(args: argparse.Namespace, settings: Settings) -> int:
    from rich.table import Table

    from service.signing import PublicKeyEntry

    now = datetime.now(UTC)

    def instant(moment: datetime | None) -> str:
        return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def cells(key: PublicKeyEntry) -> tuple[str, ...]:
        over = key.status == "retiring" and key.retire_after is not None and key.retire_after <= now
        status = f"{key.status} (overlap over)" if over else key.status
        return key.kid, key.alg, status, instant(key.retire_after), instant(key.revoked_at)

    registry = load_registry(settings.network_path)
    table = Table(title=f"Network registry {settings.network_path}")
    for column in ("owner", "name", "role", "kid", "alg", "status", "retire_after", "revoked_at"):
        table.add_column(column)
    for key in registry.hub_keys:
        table.add_row("hub", registry.hub_name, "hub", *cells(key))
    for participant in registry.participants.values():
        role = participant.role if participant.active else f"{participant.role} (former)"
        for key in participant.keys:
            table.add_row(participant.ods, participant.name, role, *cells(key))
        if not participant.keys:
            table.add_row(participant.ods, participant.name, role, "(none: run keys init)", "", "", "", "")
    Console().print(table)
    return 0


def _aware_datetime(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 date-time: {text!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("give a time zone, e.g. 2026-11-24T09:00:00Z")
    return moment


def _cmd_keys_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import timedelta

    from rich.markup import escape

    from service.keystore import rotate_key

    try:
        overlap = timedelta(hours=args.overlap_hours)
        report = rotate_key(settings.network_path, settings.keys_dir, args.ods, overlap=overlap)
    except (ValueError, OverflowError) as err:  # KeyLifecycleError and RegistryError are ValueErrors
        console.print(f"[red]refused:[/] {escape(str(err))}")
        return 1
    console.print(f"{report.owner}: new active key {report.new_kid}")
    for kid in report.retired_kids:
        console.print(f"retiring {kid}: verifies signatures made before {report.retire_after:%Y-%m-%dT%H:%M:%SZ}")
    if report.archived_private_path is not None:
        console.print(f"previous private key kept at {report.archived_private_path}")
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    console.print("send SIGHUP to the running service to load the registry change")
    return 0


def _cmd_keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from rich.markup import escape

    from service.keystore import revoke_key

    try:
        report = revoke_key(settings.network_path, args.ods, args.kid, at=args.at)
    except ValueError as err:
        console.print(f"[red]refused:[/] {escape(str(err))}")
        return 1
    when = f"{report.revoked_at:%Y-%m-%dT%H:%M:%SZ}"
    console.print(f"{report.owner} {report.kid}: revoked from {when}" + ("" if report.changed else " (unchanged)"))
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    console.print("send SIGHUP to the running service to load the registry change")
    return 0


def _cmd_keys_rotate_kek(args: argparse.Namespace, settings: Settings) -> int:
    from service.crypto.kek import KeyUnavailableError, UnwrapError
    from service.crypto.rotation import purge_retired_keks, rotate_kek

    async def run(dsn: str) -> int:
        await db.migrate(dsn)
        pool = await db.create_pool(dsn, max_size=2)
        try:
            if args.purge_retired:
                purged = await purge_retired_keks(settings.kek_path, pool)
                console.print(f"active {purged.active_kek_id}; re-wrapped {purged.rewrapped} data key(s)")
                console.print(f"removed {', '.join(purged.removed_kek_ids) or 'no retired KEK'}")
                if purged.kept_kek_ids:
                    console.print(f"[yellow]kept (still in use):[/] {', '.join(purged.kept_kek_ids)}")
                return 0
            report = await rotate_kek(settings.kek_path, pool)
        except (KeyUnavailableError, UnwrapError) as err:
            console.print(f"[red]refused:[/] {err}")
            return 1
        finally:
            await pool.close()
        console.print(f"new active KEK {report.new_kek_id}; re-wrapped {report.rewrapped} data key(s)")
        console.print(
            f"retired {', '.join(report.retired_kek_ids)}: kept for unwrapping until "
            "`handover keys rotate-kek --purge-retired` (run it in a minute, once in-flight writes have committed)"
        )
        return 0

    return _with_database(settings, run)


def _cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    from adapters.send_cli import SendOrder, send_file

    base = args.url or f"http://{settings.host}:{settings.port}"
    order = SendOrder(args.file, args.ods, base, settings.keys_dir, settings.network_path, as_is=args.as_is)
    return asyncio.run(send_file(order, lambda line: console.print(line, markup=False, soft_wrap=True)))


def _add_hl7_commands(commands: Any) -> None:
    hl7 = commands.add_parser("hl7", help="the trust-side HL7 v2 connector").add_subparsers(title="hl7 commands")
    hl7_listen = hl7.add_parser("listen", help="MLLP listener for a trust's EPR (mapping: adapters/README.md)")
    hl7_listen.add_argument("--as", dest="ods", required=True, help="ODS code of the trust whose EPR this serves")
    hl7_listen.add_argument("--port", type=int, default=2575, help="MLLP port (default 2575)")
    hl7_listen.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    hl7_listen.add_argument("--url", default=None, help="hub base URL (default: http://HANDOVER_LISTEN)")
    hl7_listen.add_argument("--queue", type=Path, default=None, help="queue directory (default var/hl7/ODS)")
    hl7_listen.add_argument("--epr", default=None, help="HOST:PORT of the EPR's MLLP listener for what arrives")
    hl7_listen.add_argument("--metrics", default=None, help="HOST:PORT to serve the connector's /metrics on")
    hl7_listen.set_defaults(run=_cmd_hl7_listen)


def _cmd_hl7_listen(args: argparse.Namespace, settings: Settings) -> int:
    from adapters.hl7.run import ListenOptions, listen, parse_endpoint

    configure_logging()
    try:
        epr = parse_endpoint(args.epr) if args.epr else None
        metrics = parse_endpoint(args.metrics) if args.metrics else None
    except ValueError as err:
        print(f"handover hl7 listen: {err} (e.g. 127.0.0.1:2576)", file=sys.stderr)
        return 2
    options = ListenOptions(
        ods=args.ods,
        hub_url=args.url or f"http://{settings.host}:{settings.port}",
        host=args.host,
        port=args.port,
        queue_dir=args.queue or Path("var/hl7") / args.ods,
        network_path=settings.network_path,
        keys_dir=settings.keys_dir,
        epr=epr,
        metrics=metrics,
    )
    return asyncio.run(listen(options))


def _cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    from adapters.validate_cli import validate_files

    return validate_files(args.files, Console())


def _cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    from adapters.verify import render_report, verify_file

    report = verify_file(args.file, load_registry(settings.network_path))
    Console().print(render_report(report))
    return 0 if report.valid else 1


def _cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    if args.export is not None or args.database_url:
        return asyncio.run(verify_cli.verify_command(args, args.database_url, console))
    return _with_database(settings, lambda dsn: verify_cli.verify_command(args, dsn, console))


def _cmd_audit_export(args: argparse.Namespace, settings: Settings) -> int:
    if args.database_url:
        return asyncio.run(audit_export.export_command(args, args.database_url, console))
    return _with_database(settings, lambda dsn: audit_export.export_command(args, dsn, console))


def _cmd_db_migrate(args: argparse.Namespace, settings: Settings) -> int:

    async def migrate(dsn: str) -> int:
        applied = await db.migrate(dsn)
        console.print(f"applied {len(applied)} migration(s): {', '.join(m.name for m in applied) or 'none pending'}")
        return 0

    return _with_database(settings, migrate)


if __name__ == "__main__":
    sys.exit(main())
