"""One Patroni cluster per module (tests/ha/cluster.py), and two hubs on it as two machines would run them: hub A
reaches the primary through the multi-host DSN (target_session_attrs=read-write), hub B through HAProxy, which
routes by Patroni's GET /primary (the route docs/operations.md recommends). The centre RGT is a real push
recipient; answers fall overdue within two seconds so the hubs' safety nets have work during the failovers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.recipient import Recipient
from service.crypto.kek import create_kek_file
from tests.ha.cluster import PatroniCluster, require_ha_parts
from tests.ha.hubs import HubProcess, hub_env, start_hub
from tests.support.centre import centre_with_push
from tests.support.hub import Network, free_port

HUB_SETTINGS = {
    "HANDOVER_CHECKPOINT_SECONDS": "0.5",
    "HANDOVER_SAFETY_NET_SECONDS": "0.3",
    "HANDOVER_DEADLINE_ACKNOWLEDGEMENT_HOURS": "0.0005",  # 1.8 s: answers fall overdue during every run
    "HANDOVER_RELAY_POLL_SECONDS": "0.5",
    "HANDOVER_PUSH_TIMEOUT_SECONDS": "3",
    "HANDOVER_INTAKE_DATABASE_TIMEOUT_SECONDS": "2",
    "HANDOVER_DATABASE_WAIT_SECONDS": "120",
}


@dataclass
class HighlyAvailable:
    cluster: PatroniCluster
    network: Network
    recipient: Recipient
    kek: Path
    logs: Path
    a: HubProcess  # multi-host DSN
    b: HubProcess  # through HAProxy

    def env(self, dsn: str, **extra: str) -> dict[str, str]:
        return hub_env(self.network, dsn, free_port(), self.kek, **HUB_SETTINGS, **extra)

    def start_hub(self, dsn: str, *, workers: int = 1) -> HubProcess:
        return start_hub(self.env(dsn), self.logs, workers=workers)

    def hubs_unrestarted(self) -> None:
        for hub in (self.a, self.b):
            assert hub.proc.poll() is None, f"hub on {hub.port} exited:\n" + "\n".join(hub.log_lines()[-20:])


@pytest.fixture(scope="module")
def cluster() -> Iterator[PatroniCluster]:
    require_ha_parts()
    started = PatroniCluster.create()
    try:
        started.start()
        yield started
    finally:
        started.close()


@pytest.fixture(scope="module")
async def ha(
    cluster: PatroniCluster, network: Network, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[HighlyAvailable]:
    directory = tmp_path_factory.mktemp("ha")
    kek = directory / "kek.key"
    create_kek_file(kek)
    async with centre_with_push(network, directory) as (edited, recipient):
        env_a = hub_env(edited, cluster.multi_host_dsn(), free_port(), kek, **HUB_SETTINGS)
        env_b = hub_env(edited, cluster.haproxy_dsn(), free_port(), kek, **HUB_SETTINGS)
        a = start_hub(env_a, directory / "logs")
        b = start_hub(env_b, directory / "logs")
        try:
            await asyncio.gather(asyncio.to_thread(a.wait_ready), asyncio.to_thread(b.wait_ready))
            yield HighlyAvailable(cluster, edited, recipient, kek, directory / "logs", a, b)
        finally:  # stopped from a thread: their last pushes reach the recipient this loop runs
            await asyncio.gather(asyncio.to_thread(a.stop), asyncio.to_thread(b.stop))
