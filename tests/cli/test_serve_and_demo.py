"""The `handover` command as a user runs it: real processes, the embedded cluster, signals, the demo."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.builders import synthetic_nhs_number
from adapters.demo import AWAITING_SEED, CWT_PATHWAYS, SURNAMES, patient_name
from adapters.history_plan import FAMILY, plan_year
from service.store.embedded import locate_cluster
from tests.support.embedded import embedded_var_dir, postmaster_alive
from tests.support.hub import ROOT, Network, free_port
from tests.support.processes import HANDOVER, wait_healthy

HISTORY = 12


def env_for(network: Network, port: int, **extra: str) -> dict[str, str]:
    # HANDOVER_EMBEDDED_ROOT passes through, so a cluster placed outside a private checkout is found by the test too.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOVER_") or k == "HANDOVER_EMBEDDED_ROOT"}
    env.update(
        HANDOVER_LISTEN=f"127.0.0.1:{port}",
        HANDOVER_NETWORK=str(network.network_path),
        HANDOVER_KEYS_DIR=str(network.keys_dir),
        **extra,
    )
    return env


def postmaster_running(var_dir: Path) -> bool:
    """Whether var_dir's embedded cluster is running, wherever it lives (var_dir/pg, or as root in a mode-700
    checkout under /var/lib/handover/clusters)."""
    return postmaster_alive(locate_cluster(var_dir) / "data")


@pytest.fixture
def var_dir() -> Iterator[Path]:
    # Under the checkout (like var/pg), not pytest's tmp (mode 0700 there: the postgres user could not enter);
    # stopped and removed afterwards, wherever the cluster went.
    with embedded_var_dir("cli-test") as path:
        yield path


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_serve_starts_embedded_cluster_and_stops_it_on_signal(
    network: Network, var_dir: Path, stop_signal: signal.Signals
) -> None:
    port = free_port()
    env = env_for(network, port, HANDOVER_VAR_DIR=str(var_dir))
    proc = subprocess.Popen([HANDOVER, "serve"], env=env, cwd=ROOT, stderr=subprocess.PIPE)
    try:
        wait_healthy(port, proc)
        assert postmaster_running(var_dir)
        proc.send_signal(stop_signal)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (0, 128 + stop_signal, -stop_signal), stderr.decode()[-2000:]
    assert str(locate_cluster(var_dir)) in stderr.decode(), "start-up says where the data lives"
    assert not postmaster_running(var_dir), "the cluster we started is stopped on exit"


def test_serve_reuses_the_cluster_and_its_data_on_the_next_start(network: Network, var_dir: Path) -> None:
    for round_number in range(2):
        port = free_port()
        proc = subprocess.Popen(
            [HANDOVER, "serve"],
            env=env_for(network, port, HANDOVER_VAR_DIR=str(var_dir)),
            cwd=ROOT,
            stderr=subprocess.PIPE,
        )
        try:
            wait_healthy(port, proc)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=60)
        if round_number == 1:
            assert "initdb" not in stderr.decode().lower() or "reus" in stderr.decode().lower()
    assert (locate_cluster(var_dir) / "data" / "PG_VERSION").exists()


def test_db_migrate_applies_once(network: Network, database: str) -> None:
    env = env_for(network, free_port(), HANDOVER_DATABASE_URL=database)
    out = subprocess.run([HANDOVER, "db", "migrate"], env=env, cwd=ROOT, capture_output=True, check=True, timeout=60)
    assert "none pending" in out.stderr.decode()  # the test database was migrated from the template


def test_demo_once_plays_the_scenario_and_exits_zero(network: Network, database: str, tmp_path: Path) -> None:
    port = free_port()
    env = env_for(network, port, HANDOVER_DATABASE_URL=database, HANDOVER_VAR_DIR=str(tmp_path), HANDOVER_DEV_IDP="1")
    command = [HANDOVER, "demo", "--once", "--history", str(HISTORY)]  # a small year first (issue 25 item 9)
    out = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, timeout=300, check=False)
    stdout = out.stdout.decode()
    log_file = tmp_path / "demo" / "handover.log"
    assert out.returncode == 0, stdout[-3000:] + out.stderr.decode()[-3000:]
    assert "every step checked out" in stdout
    assert f"{HISTORY} pathways" in " ".join(stdout.split()), "the year of history played through the intake"
    for ods in ("RM1", "RDE", "RGN", "RC9", "RGP", "RCX", "RGR"):
        assert ods in stdout
    assert stdout.count("breach allocation") == 4, "one cancer pathway per reachable allocation rule (issue 24)"
    for rule in ("pending {}", "shared {", "treating {", "referring {"):
        assert rule in stdout
    terminal = out.stderr.decode() + stdout
    assert str(log_file) in terminal, "the demo says where its logs went"
    assert '"level": "info"' not in terminal, "the terminal shows the narrative, not the JSON logs"
    assert '"message": "request"' in log_file.read_text(), "the service's logs are in the file"
    demo_nhs_numbers = [synthetic_nhs_number(seed * 7919) for seed in range(1, 13)]
    demo_nhs_numbers += [p.patient.nhs_number for p in plan_year(["RM1"], "RGT", HISTORY, end=datetime.now(UTC))]
    logs = terminal + log_file.read_text()
    assert not [n for n in demo_nhs_numbers if n in logs], "no NHS numbers in the logs or the report"
    assert not [name for name in SURNAMES if name in logs], "no patient names in the logs or the report"
    assert not [name for name in FAMILY if name in logs], "nor the history's patients' names"
    pg_dump = shutil.which("pg_dump") or "/usr/lib/postgresql/15/bin/pg_dump"
    dump = subprocess.run([pg_dump, "--dbname", database], capture_output=True, check=True, timeout=60).stdout
    assert b"episodes" in dump, "the dump is of the demo's database"
    assert not [n for n in demo_nhs_numbers if n.encode() in dump], "D1: no NHS number at rest in clear"
    assert not [name for name in SURNAMES if name.encode() in dump], "D1: no patient name at rest in clear"
    assert not [name for name in FAMILY if name.encode() in dump], "D1: nor the history's"


def test_no_two_demo_patients_share_a_name() -> None:
    """The cancer pathways' patients (seeds 9-12) once took the referrers' surnames again ("Alex Cley" twice), so a
    trust's episode list seemed to show another trust's patient."""
    seeds = [*range(1, AWAITING_SEED + 1), *(seed for seed, *_ in CWT_PATHWAYS)]
    names = [patient_name(seed) for seed in seeds]
    assert len(set(names)) == len(names), names


def test_keys_init_does_not_overwrite_without_force(tmp_path: Path) -> None:
    network_path = tmp_path / "network.json"
    shutil.copy(ROOT / "keys" / "network.json", network_path)
    env = {**os.environ, "HANDOVER_NETWORK": str(network_path), "HANDOVER_KEYS_DIR": str(tmp_path / "private")}
    subprocess.run([HANDOVER, "keys", "init"], env=env, check=True, capture_output=True, timeout=60)
    before = (tmp_path / "private" / "RGT.jwk").read_bytes()
    again = subprocess.run([HANDOVER, "keys", "init"], env=env, check=True, capture_output=True, timeout=60)
    assert (tmp_path / "private" / "RGT.jwk").read_bytes() == before
    assert "kept" in again.stderr.decode()
    subprocess.run([HANDOVER, "keys", "init", "--force"], env=env, check=True, capture_output=True, timeout=60)
    assert (tmp_path / "private" / "RGT.jwk").read_bytes() != before
    assert oct((tmp_path / "private" / "RGT.jwk").stat().st_mode & 0o777) == "0o600"
