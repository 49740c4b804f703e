"""`handover hl7 listen`: run one trust's connector until stopped (SIGINT/SIGTERM), with its trust key, the
network registry, a queue directory and, optionally, the EPR's MLLP endpoint for what the trust receives and an
address for its Prometheus figures (`/metrics`, adapters/hl7/metrics.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from adapters.hl7.connector import EprEndpoint, Hl7Connector
from adapters.hl7.inbound import Trusts
from adapters.hl7.metrics import CONTENT_TYPE, ConnectorMetrics
from adapters.hl7.queue import DiskQueue
from adapters.trust_client import TrustClient
from service.identity.keystore import load_private_jwk
from service.identity.registry import load_registry
from service.listening import explain
from service.terminology import load_code_system

log = logging.getLogger("handover.hl7")


@dataclass(frozen=True)
class ListenOptions:
    ods: str
    hub_url: str
    host: str
    port: int
    queue_dir: Path
    network_path: Path
    keys_dir: Path
    epr: EprEndpoint | None = None
    metrics: EprEndpoint | None = None  # HOST:PORT for GET /metrics


def parse_endpoint(value: str) -> EprEndpoint:
    """`HOST:PORT` as an EPR MLLP endpoint."""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{value!r} is not HOST:PORT")
    return EprEndpoint(host, int(port))


async def listen(options: ListenOptions) -> int:
    """Serve until SIGINT or SIGTERM; returns the exit status."""
    registry = load_registry(options.network_path)
    if not registry.is_participant(options.ods):
        log.error("%s is not a participant of the network", options.ods)
        return 2
    queue = DiskQueue(options.queue_dir)
    names = {p.ods: p.name for p in registry.participants.values()}
    trusts = Trusts(options.ods, names, load_code_system("handover-event").url, queue.received)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with aiohttp.ClientSession() as session:
        client = TrustClient(
            session, options.hub_url, options.ods, load_private_jwk(options.keys_dir, options.ods), registry
        )
        connector = Hl7Connector(client, queue, trusts, epr=options.epr)
        try:
            port = await connector.start(options.host, options.port)
        except OSError as err:
            print(explain(options.host, options.port, err, "--port"), file=sys.stderr, flush=True)
            return 1
        log.info("HL7 connector for %s listening on %s:%d", options.ods, options.host, port)
        print(f"listening on {options.host}:{port}", flush=True)
        try:
            metrics = await _serve_metrics(connector.metrics, options.metrics) if options.metrics else None
        except OSError as err:
            assert options.metrics is not None
            print(explain(options.metrics.host, options.metrics.port, err, "--metrics"), file=sys.stderr, flush=True)
            with contextlib.suppress(Exception):
                await connector.stop()
            return 1
        try:
            await stop.wait()
        finally:
            with contextlib.suppress(Exception):
                await connector.stop()
            if metrics is not None:
                await metrics.cleanup()
    return 0


async def _serve_metrics(figures: ConnectorMetrics, where: EprEndpoint) -> web.AppRunner:
    """GET /metrics on `where`, for Prometheus."""

    async def scrape(_request: web.Request) -> web.Response:
        response = web.Response(body=figures.render())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, where.host, where.port).start()
    print(f"metrics on http://{where.host}:{where.port}/metrics", flush=True)
    return runner
