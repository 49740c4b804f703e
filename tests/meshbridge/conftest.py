"""Fixtures for the MESH bridge tests: NHS England's MESH sandbox as a real process, a network in which some
trusts have MESH mailboxes, a running hub, and the bridge on the hub's own mailbox."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from service.meshbridge.bridge import MeshBridge, open_bridge
from tests.support.hub import Network, RunningHub, running_hub
from tests.support.mesh import HUB_MAILBOX, ON_MESH, MeshSandbox, with_mesh_mailboxes


@pytest.fixture(scope="session")
def mesh_network(network: Network, tmp_path_factory: pytest.TempPathFactory) -> Network:
    return network.edited(Path(tmp_path_factory.mktemp("mesh-network")), with_mesh_mailboxes)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[MeshSandbox]:
    running = MeshSandbox(tmp_path / "mesh", ON_MESH)
    running.start()
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
async def mesh_hub(mesh_network: Network, database: str) -> AsyncIterator[RunningHub]:
    async with running_hub(mesh_network, database) as running:
        yield running


@pytest.fixture
async def bridge(mesh_hub: RunningHub, sandbox: MeshSandbox) -> AsyncIterator[MeshBridge]:
    async with open_bridge(mesh_hub.settings, sandbox.settings(HUB_MAILBOX), mesh_hub.dsn) as running:
        yield running
