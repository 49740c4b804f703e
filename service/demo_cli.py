"""`handover demo`: start the hub, play the East Anglia scenario (adapters/demo.py), first a year of network
history through the intake in development mode (adapters/history.py, on the DemoClock of service/devclock.py), and
keep serving. Registered by service/cli.py, which passes its database and serving helpers in.
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from rich.console import Console

from service import listening
from service.clock import Clock, utc_now
from service.config import Settings
from service.logs import configure_logging

console = Console(stderr=True)
HISTORY_PATHWAYS = 260


class Serve(Protocol):
    def __call__(
        self,
        settings: Settings,
        dsn: str,
        after_start: Callable[[], Awaitable[int]] | None,
        *,
        exit_after: bool,
        clock: Clock = ...,
    ) -> Coroutine[Any, Any, int]: ...


WithDatabase = Callable[[Settings, Callable[[str], Coroutine[Any, Any, int]]], int]


def _say_error(text: str) -> None:
    console.print(text, style="red", markup=False, soft_wrap=True)  # unwrapped: addresses and names stay whole


def add_command(commands: Any, with_database: WithDatabase, serve: Serve) -> None:
    demo = commands.add_parser("demo", help="play the East Anglia scenario, then keep serving")
    demo.add_argument("--once", action="store_true", help="exit after the scenario: 0 only if every step checked out")
    demo.add_argument("-v", "--verbose", action="store_true", help="show the service's JSON logs here as well")
    demo.add_argument(
        "--history",
        type=int,
        default=HISTORY_PATHWAYS,
        metavar="N",
        help=f"first play a year of network history, N pathways (default {HISTORY_PATHWAYS}; development mode "
        "only, HANDOVER_DEV_IDP=1; 0: none)",
    )
    demo.set_defaults(run=functools.partial(_cmd_demo, with_database=with_database, serve=serve))


def _cmd_demo(args: argparse.Namespace, settings: Settings, *, with_database: WithDatabase, serve: Serve) -> int:
    from adapters.demo import play_scenario, print_report
    from service.keystore import init_keys
    from service.registry import load_registry
    from service.terminology import load_code_system

    if not listening.can_listen(settings.host, settings.port, _say_error):
        return 1
    log_file = settings.var_dir / "demo" / "handover.log"
    configure_logging(file=log_file, also_stderr=args.verbose)
    console.print(f"[dim]service logs: {log_file}{'' if args.verbose else ' (-v shows them here too)'}[/]")
    from service.staff import ensure_dev_staff_key

    created = init_keys(settings.network_path, settings.keys_dir).created
    ensure_dev_staff_key(settings.keys_dir)
    if created:
        console.print(f"made dev keys for {', '.join(created)} in {settings.keys_dir}")

    # One referring trust receives by push, at an EPR that is down until the demo brings it up.
    settings, epr, epr_port = _demo_network_with_push_endpoint(settings)
    base_url, registry = f"http://{settings.host}:{settings.port}", load_registry(settings.network_path)
    event_system = load_code_system("handover-event").url
    clock, history = _demo_history(args, settings, base_url, registry, event_system)

    async def scenario(dsn: str) -> int:
        try:
            report = await play_scenario(
                base_url,
                registry,
                settings.keys_dir,
                event_system,
                dsn=dsn,
                pushed=epr,
                pushed_port=epr_port,
                history=history,
            )
        finally:
            if args.once:
                await epr.stop()
        print_report(report, Console())
        if settings.dev_idp:
            console.print(f"staff pages: http://{settings.host}:{settings.port}/ui/ (development sign-in)")
        if not args.once:
            console.print("serving until Ctrl-C")
        return 0 if report.passed else 1

    return with_database(
        settings, lambda dsn: serve(settings, dsn, lambda: scenario(dsn), exit_after=args.once, clock=clock)
    )


def _demo_history(
    args: argparse.Namespace, settings: Settings, base_url: str, registry: Any, event_system: str
) -> tuple[Clock, Callable[[], Awaitable[Any]] | None]:
    """The hub's clock for the demo and the year of history to play first: a DemoClock (service/devclock.py) only
    in development mode; otherwise the real clock and no history."""
    if args.history <= 0:
        return utc_now, None
    if not settings.dev_idp:
        console.print("[dim]the year of history plays only in development mode (HANDOVER_DEV_IDP=1, as make demo)[/]")
        return utc_now, None
    from adapters.history import play_history
    from service.devclock import DemoClock

    clock = DemoClock()
    return clock, functools.partial(
        play_history, base_url, registry, settings.keys_dir, event_system, clock, pathways=args.history, console=console
    )


def _demo_network_with_push_endpoint(settings: Settings) -> tuple[Settings, Any, int]:
    """A copy of the network registry under var/demo in which the last referrer has a push endpoint on a free
    local port, served by an EPR simulator; the demo's service uses the copy."""
    import dataclasses
    import socket

    from adapters.epr_simulator import EprSimulator
    from service.registry import load_registry

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    doc = json.loads(settings.network_path.read_text(encoding="utf-8"))
    pushed = load_registry(settings.network_path).referrers()[-1].ods
    doc["participants"][pushed]["endpoint"] = f"http://127.0.0.1:{port}"
    path = settings.var_dir / "demo" / "network.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    demo_settings = dataclasses.replace(settings, network_path=path)
    return demo_settings, EprSimulator(pushed, load_registry(path)), port
