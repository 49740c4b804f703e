"""Issue 15 item 7: the embedded cluster stops, its port is taken meanwhile, and it comes back on another one. A
running `handover serve` (two workers, so the supervisor's hand-over of the cluster is covered too) answers 503
while the database is away and then reaches it on its new port by itself: no restart."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import aiohttp
import pytest

from adapters.trust_client import TrustClient
from service.store.embedded import ensure_cluster, locate_cluster
from tests.cli.test_serve_and_demo import env_for
from tests.support.embedded import BINDIR, embedded_var_dir, pg_ctl
from tests.support.hub import ROOT, Network, free_port
from tests.support.messages import referral
from tests.support.processes import HANDOVER, wait_healthy

pytestmark = pytest.mark.skipif(BINDIR is None, reason="no PostgreSQL binaries on this machine")


def readyz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return err.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0


def wait_for_status(port: int, wanted: int, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while (status := readyz(port)) != wanted:
        assert time.monotonic() < deadline, f"/readyz stayed {status}, wanted {wanted}"
        time.sleep(0.3)


def test_a_running_hub_follows_the_embedded_cluster_to_its_new_port(network: Network) -> None:
    with embedded_var_dir("moved") as var_dir:  # whatever happens, nothing of its cluster stays running
        pg_dir = locate_cluster(var_dir)  # var_dir/pg, or as root in a mode-700 checkout outside it
        port = free_port()
        proc = subprocess.Popen(
            [HANDOVER, "serve", "--workers", "2"],
            env=env_for(network, port, HANDOVER_VAR_DIR=str(var_dir)),
            cwd=ROOT,
            stderr=subprocess.DEVNULL,
        )
        squatter = socket.socket()
        moved = None
        try:
            wait_healthy(port, proc)
            data_dir = pg_dir / "data"
            old_port = int((pg_dir / "port").read_text())
            stopped = pg_ctl("stop", "-D", str(data_dir), "-m", "fast", "-w")
            assert stopped.returncode == 0, stopped.stderr
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the old server's TIME_WAITs
            squatter.bind(("127.0.0.1", old_port))  # its old port is someone else's now
            squatter.listen()
            wait_for_status(port, 503)

            moved = ensure_cluster(var_dir, log=lambda line: None)  # back, elsewhere
            new_port = int((pg_dir / "port").read_text())
            assert new_port != old_port
            wait_for_status(port, 200)
            asyncio.run(send_referrals(network, port))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            squatter.close()
            if moved is not None:
                moved.stop()


async def send_referrals(network: Network, port: int) -> None:
    """New connections, spread over both workers, reach the moved cluster: every referral is accepted."""
    for _ in range(4):
        async with aiohttp.ClientSession() as session:
            base = f"http://127.0.0.1:{port}"
            client = TrustClient(session, base, "RM1", network.private_key("RM1"), network.registry)
            assert (await client.send(client.sign(referral()))).accepted
