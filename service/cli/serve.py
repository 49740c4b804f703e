"""`handover serve`: the hub on its port (one process or a supervisor of workers), SIGHUP reloading the registry;
`handover demo` (cli/demo.py) serves it the same way."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from service import listening
from service.cli import demo
from service.cli.running import console, say_error, with_database
from service.clock import Clock, utc_now
from service.config import Settings
from service.identity.registry import load_registry
from service.identity.tls import server_ssl_context, tls_settings_from_env
from service.logs import configure_logging
from service.workers import REUSE_PORT_ENV, Supervisor, default_workers, prepare_shared_files

_background: set[asyncio.Task[int]] = set()  # tasks started from signal handlers, kept until done


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `serve` and `demo`."""
    serve = commands.add_parser("serve", help="run the hub (embedded PostgreSQL unless HANDOVER_DATABASE_URL)")
    serve.add_argument(
        "--workers", type=int, default=None, help="processes serving the one port (default: the number of CPUs)"
    )
    serve.set_defaults(run=_cmd_serve)

    demo.add_command(commands, with_database, _serve_until_stopped)  # `demo`, in its own module


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
            say_error(listening.explain(settings.host, settings.port, err))
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
    if os.environ.get(REUSE_PORT_ENV) != "1" and not listening.can_listen(settings.host, settings.port, say_error):
        return 1  # (a worker shares the port its siblings hold: the supervisor looked before starting them)
    load_registry(settings.network_path)  # a registry that cannot serve is said (main) before any database is touched
    if workers == 1:
        return with_database(settings, lambda dsn: _serve_until_stopped(settings, dsn, None, exit_after=False))

    async def supervise(dsn: str) -> int:
        await prepare_shared_files(settings, dsn)  # once, before any worker starts
        supervisor = Supervisor(workers, dsn, say=lambda line: console.print(f"[dim]{line}[/]"))
        return await supervisor.run()

    console.print(f"Handover listening on http://{settings.host}:{settings.port} with {workers} workers")
    return with_database(settings, supervise)
