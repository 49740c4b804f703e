"""`handover hl7 listen`: the trust-side HL7 v2 (MLLP) connector (adapters/hl7/)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from service.config import Settings
from service.logs import configure_logging


def add_commands(commands: Any) -> None:
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
