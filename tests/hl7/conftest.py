"""Fixtures: a trust's HL7 connector on a real port, in front of the real hub, with its queue in tmp_path."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from adapters.hl7.connector import EprEndpoint, Hl7Connector
from adapters.hl7.inbound import Trusts
from adapters.hl7.queue import DiskQueue
from adapters.trust_client import TrustClient
from tests.hl7.mllp import EprListener
from tests.support.hub import EVENT_SYSTEM, Network, RunningHub, running_hub

StartConnector = Callable[..., AbstractAsyncContextManager[tuple[Hl7Connector, int]]]


def trusts_for(hub: RunningHub, ods: str, queue: DiskQueue) -> Trusts:
    names = {p.ods: p.name for p in hub.network.registry.participants.values()}
    return Trusts(ods, names, EVENT_SYSTEM, queue.received)


@pytest.fixture
async def hub(network: Network, database: str) -> AsyncIterator[RunningHub]:
    """The real hub, signing audit checkpoints every 0.2 s so a witness sees them promptly."""
    async with running_hub(network, database, checkpoint_seconds=0.2) as running:
        yield running


@pytest.fixture
def start_connector(hub: RunningHub, tmp_path: Path) -> StartConnector:
    """start_connector(ods, base_url=hub, epr=None) → (connector, MLLP port), stopped on leaving."""

    @asynccontextmanager
    async def start(
        ods: str, *, base_url: str | None = None, epr: EprListener | None = None, queue_dir: Path | None = None
    ) -> AsyncIterator[tuple[Hl7Connector, int]]:
        queue = DiskQueue(queue_dir or tmp_path / f"queue-{ods}")
        client = TrustClient(
            hub.session, base_url or hub.base_url, ods, hub.network.private_key(ods), hub.network.registry
        )
        endpoint = EprEndpoint("127.0.0.1", epr.port) if epr is not None else None
        connector = Hl7Connector(
            client, queue, trusts_for(hub, ods, queue), epr=endpoint, retry_seconds=0.3, poll_seconds=0.3
        )
        port = await connector.start("127.0.0.1", 0)
        try:
            yield connector, port
        finally:
            await connector.stop()

    return start


@pytest.fixture
async def epr_listener() -> AsyncIterator[EprListener]:
    listener = await EprListener().start()
    try:
        yield listener
    finally:
        await listener.stop()
