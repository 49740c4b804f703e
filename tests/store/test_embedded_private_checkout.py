"""Issue 26 item 2: as root in a mode-700 checkout the embedded cluster lives under /var/lib/handover/clusters
(HANDOVER_EMBEDDED_ROOT). A test that starts one there finds it, and leaves nothing running and nothing on disk,
even when `handover serve` is killed before it can stop the cluster it started: how an earlier run of the suite
left two servers running and six cluster directories behind."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from service.store.embedded import locate_cluster
from tests.cli.test_serve_and_demo import env_for
from tests.support.embedded import BINDIR, embedded_var_dir, postmaster_alive, processes_under
from tests.support.hub import ROOT, Network, free_port
from tests.support.processes import HANDOVER, wait_healthy

pytestmark = pytest.mark.skipif(BINDIR is None, reason="no PostgreSQL binaries on this machine")


def test_a_cluster_placed_outside_a_private_checkout_is_found_stopped_and_removed(network: Network) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root hands the cluster to the postgres user, and so places it outside a private checkout")
    clusters_root = Path(os.environ.get("HANDOVER_EMBEDDED_ROOT") or "/var/lib/handover/clusters")
    with embedded_var_dir("private", private_parent=True) as var_dir:
        pg_dir = locate_cluster(var_dir)
        assert pg_dir.is_relative_to(clusters_root), "postgres cannot reach a mode-700 checkout: placed outside"
        port = free_port()
        proc = subprocess.Popen(
            [HANDOVER, "serve", "--workers", "1"],
            env=env_for(network, port, HANDOVER_VAR_DIR=str(var_dir)),
            cwd=ROOT,
            stderr=subprocess.PIPE,
        )
        try:
            wait_healthy(port, proc)
        finally:
            proc.send_signal(signal.SIGKILL)  # no `finally` in serve runs: the cluster it started stays up
            _, stderr = proc.communicate(timeout=60)
        assert str(pg_dir) in stderr.decode(), "start-up says where the cluster went"
        assert (var_dir / "pg-location").read_text().strip() == str(pg_dir)
        assert postmaster_alive(pg_dir / "data"), "left running by the killed serve"
    assert not processes_under(pg_dir), "stopped by the test's cleanup"
    assert not pg_dir.parent.exists(), f"{pg_dir.parent} removed"
    assert not var_dir.parent.exists(), "the scratch checkout directory removed"
