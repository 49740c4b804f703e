"""`handover mesh-bridge`: the hub's MESH mailbox, both ways (service/meshbridge/)."""

from __future__ import annotations

import argparse
import asyncio
import signal

from service.cli.running import console, with_database
from service.config import Settings
from service.errors import ConfigError
from service.logs import configure_logging


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mesh_bridge = commands.add_parser(
        "mesh-bridge", help="read the hub's MESH mailbox into the hub and deliver to MESH-only trusts (HANDOVER_MESH_*)"
    )
    mesh_bridge.set_defaults(run=_cmd_mesh_bridge)


def _cmd_mesh_bridge(args: argparse.Namespace, settings: Settings) -> int:
    from service.mesh.settings import MeshSettings

    try:
        from service.meshbridge.bridge import open_bridge
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

    return with_database(settings, run)
