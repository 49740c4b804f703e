"""The embedded cluster under <var>/pg: first start, reuse, restart with data kept, port moves, stop, fallbacks."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from service.store import embedded
from service.store.embedded import EmbeddedCluster, EmbeddedPostgresError, ensure_cluster, find_postgres_bindir

BINDIR = find_postgres_bindir()
needs_binaries = pytest.mark.skipif(BINDIR is None, reason="no PostgreSQL binaries on this machine")
ROOT = os.geteuid() == 0


class Clusters:
    """Hands out fresh var directories and clusters; teardown stops every cluster and removes the directories."""

    def __init__(self) -> None:
        self.clusters: list[EmbeddedCluster] = []
        self.dirs: list[Path] = []
        self.log: list[str] = []

    def var_dir(self) -> Path:
        path = Path(tempfile.mkdtemp(prefix="handover-embedded-", dir="/tmp"))
        path.chmod(0o755)  # mkdtemp makes it 0700; as root, the postgres user must be able to traverse it
        self.dirs.append(path)
        return path

    def ensure(self, var_dir: Path) -> EmbeddedCluster:
        cluster = ensure_cluster(var_dir, log=self.log.append)
        self.clusters.append(cluster)
        return cluster

    def close(self) -> None:
        try:
            for cluster in reversed(self.clusters):
                cluster.stop()
            leftovers = [pid for pid, args in _processes() if any(str(path) in args for path in self.dirs)]
            assert not leftovers, f"servers left running: {leftovers}"
        finally:
            for path in self.dirs:
                shutil.rmtree(path)


@pytest.fixture
def clusters() -> Iterator[Clusters]:
    handed_out = Clusters()
    try:
        yield handed_out
    finally:
        handed_out.close()


def _processes() -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
            except OSError:
                continue  # exited meanwhile
    return found


def _postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split()[0])


def _process_user(pid: int) -> str:
    return subprocess.run(
        ["ps", "-o", "user=", "-p", str(pid)], capture_output=True, text=True, check=True
    ).stdout.strip()


def _port(cluster: EmbeddedCluster) -> int:
    port = urlsplit(cluster.dsn).port
    assert port is not None
    return port


async def _fetchval(dsn: str, query: str) -> object:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        return await connection.fetchval(query)
    finally:
        await connection.close()


def test_find_postgres_bindir_finds_the_debian_binaries() -> None:
    if not Path("/usr/lib/postgresql").is_dir():
        pytest.skip("no Debian-style /usr/lib/postgresql here")
    assert BINDIR is not None
    assert BINDIR.parent.parent == Path("/usr/lib/postgresql")  # symlinks on PATH resolved to the real bindir
    assert all((BINDIR / program).is_file() for program in ("initdb", "pg_ctl", "postgres"))


def test_find_postgres_bindir_without_path_falls_back_to_usr_lib(monkeypatch: pytest.MonkeyPatch) -> None:
    if not Path("/usr/lib/postgresql").is_dir():
        pytest.skip("no Debian-style /usr/lib/postgresql here")
    monkeypatch.setattr(shutil, "which", lambda _name: None)  # no pg_ctl, initdb or pg_config on PATH
    found = find_postgres_bindir()
    assert found is not None
    assert found.parent.parent == Path("/usr/lib/postgresql")


@needs_binaries
async def test_first_start_creates_the_cluster_and_database(clusters: Clusters) -> None:
    var_dir = clusters.var_dir()
    cluster = clusters.ensure(var_dir)  # called with this test's event loop running

    pg_dir = var_dir / "pg"
    assert cluster.started_here
    assert cluster.data_dir == pg_dir / "data"
    assert (pg_dir / "data" / "PG_VERSION").is_file()
    assert cluster.dsn.startswith("postgresql://handover:")
    assert cluster.dsn.endswith(f"@127.0.0.1:{_port(cluster)}/handover")
    assert int((pg_dir / "port").read_text()) == _port(cluster)
    assert stat.S_IMODE((pg_dir / "password").stat().st_mode) == 0o600
    password = urlsplit(cluster.dsn).password
    assert password
    assert password not in repr(cluster)
    assert (pg_dir / "password").read_text().strip() == password
    assert any(str(cluster.data_dir) in line for line in clusters.log)
    assert any("started on 127.0.0.1" in line for line in clusters.log)

    assert await _fetchval(cluster.dsn, "SELECT 1") == 1
    assert await _fetchval(cluster.dsn, "SELECT current_database()") == "handover"
    assert await _fetchval(cluster.dsn, "SHOW max_connections") == "200"
    assert await _fetchval(cluster.dsn, "SHOW listen_addresses") == "127.0.0.1"
    assert await _fetchval(cluster.dsn, "SHOW fsync") == "on"
    assert await _fetchval(cluster.dsn, "SHOW data_checksums") == "on"
    assert await _fetchval(cluster.dsn, "SHOW server_encoding") == "UTF8"
    assert await _fetchval(cluster.dsn, "SELECT datcollate FROM pg_database WHERE datname = 'handover'") in {
        "C.UTF-8",
        "C.utf8",
    }

    expected_user = "postgres" if ROOT else _process_user(os.getpid())
    assert _process_user(_postmaster_pid(cluster.data_dir)) == expected_user


@needs_binaries
async def test_second_ensure_reuses_the_running_server(clusters: Clusters) -> None:
    var_dir = clusters.var_dir()
    first = clusters.ensure(var_dir)
    pid = _postmaster_pid(first.data_dir)

    second = clusters.ensure(var_dir)

    assert not second.started_here
    assert _port(second) == _port(first)
    assert second.dsn == first.dsn
    assert any("reusing" in line for line in clusters.log)
    second.stop()  # not ours: a no-op
    assert _postmaster_pid(first.data_dir) == pid
    assert await _fetchval(second.dsn, "SELECT 1") == 1


@needs_binaries
async def test_restart_keeps_the_data_and_stop_is_idempotent(clusters: Clusters) -> None:
    var_dir = clusters.var_dir()
    first = clusters.ensure(var_dir)
    connection = await asyncpg.connect(first.dsn)
    try:
        await connection.execute("CREATE TABLE kept (note text); INSERT INTO kept VALUES ('still here')")
    finally:
        await connection.close()

    stoppers = [threading.Thread(target=first.stop) for _ in range(4)]  # concurrent stops are serialised
    for thread in stoppers:
        thread.start()
    for thread in stoppers:
        thread.join()
    assert not (first.data_dir / "postmaster.pid").exists()
    first.stop()  # again: nothing to do

    second = clusters.ensure(var_dir)

    assert second.started_here
    assert _port(second) == _port(first)
    assert await _fetchval(second.dsn, "SELECT note FROM kept") == "still here"
    first.stop()  # the old handle must not stop the new server
    assert await _fetchval(second.dsn, "SELECT 1") == 1


@needs_binaries
async def test_a_taken_port_moves_the_cluster_to_a_new_one(clusters: Clusters) -> None:
    var_dir = clusters.var_dir()
    first = clusters.ensure(var_dir)
    old_port = _port(first)
    first.stop()

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the old listener may be in TIME_WAIT
        squatter.bind(("127.0.0.1", old_port))
        squatter.listen()
        second = clusters.ensure(var_dir)

    assert second.started_here
    assert _port(second) != old_port
    assert int((var_dir / "pg" / "port").read_text()) == _port(second)
    assert any(f"port {old_port} is taken" in line for line in clusters.log)
    assert await _fetchval(second.dsn, "SELECT current_database()") == "handover"


@needs_binaries
async def test_a_var_dir_too_deep_for_a_unix_socket_listens_on_tcp_only(clusters: Clusters) -> None:
    var_dir = clusters.var_dir() / ("v" * 90)
    assert len(f"{var_dir}/pg/run/.s.PGSQL.65535") > 107

    cluster = clusters.ensure(var_dir)

    assert any("TCP only" in line for line in clusters.log)
    assert await _fetchval(cluster.dsn, "SHOW unix_socket_directories") == ""


@needs_binaries
def test_stop_works_from_a_signal_handler(clusters: Clusters) -> None:
    cluster = clusters.ensure(clusters.var_dir())
    previous = signal.signal(signal.SIGUSR1, lambda _signum, _frame: cluster.stop())
    try:
        os.kill(os.getpid(), signal.SIGUSR1)  # the handler runs in this thread before kill() returns to us
    finally:
        signal.signal(signal.SIGUSR1, previous)

    assert not (cluster.data_dir / "postmaster.pid").exists()


@needs_binaries
def test_a_failed_start_raises_with_the_tail_of_the_server_log(clusters: Clusters) -> None:
    var_dir = clusters.var_dir()
    cluster = clusters.ensure(var_dir)
    cluster.stop()
    with (cluster.data_dir / "postgresql.conf").open("a") as conf:
        conf.write("shared_buffers = 'banana'\n")

    with pytest.raises(EmbeddedPostgresError, match="banana") as raised:
        clusters.ensure(var_dir)

    assert "server.log" in str(raised.value)
    assert not (cluster.data_dir / "postmaster.pid").exists()


@needs_binaries
async def test_as_root_a_private_checkout_keeps_its_cluster_in_a_system_directory(
    clusters: Clusters, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15 item 1: a root checkout in a mode-700 home works, its permissions untouched, and the cluster
    placed where the `postgres` user can reach it is found again on the next start."""
    if not ROOT:
        pytest.skip("only root hands the cluster to another user")
    system_root = clusters.var_dir() / "clusters"  # a stand-in for /var/lib/handover/clusters
    monkeypatch.setenv("HANDOVER_EMBEDDED_ROOT", str(system_root))
    private = clusters.var_dir()
    private.chmod(0o700)
    var_dir = private / "checkout" / "var"

    first = clusters.ensure(var_dir)
    assert first.started_here
    assert first.data_dir.is_relative_to(system_root), "the cluster lives under the system directory"
    assert clusters.log[0].startswith(f"embedded PostgreSQL: cluster in {first.data_dir.parent}"), "said first"
    assert await _fetchval(first.dsn, "SELECT current_database()") == "handover"
    assert stat.S_IMODE(private.stat().st_mode) == 0o700, "the user's own directory is left as it was"
    assert (var_dir / "pg-location").read_text().strip() == str(first.data_dir.parent)

    again = clusters.ensure(var_dir)
    assert again.data_dir == first.data_dir
    assert not again.started_here, "reused, not started twice"


@needs_binaries
async def test_without_c_utf8_or_client_programs_it_falls_back(
    clusters: Clusters, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bindir with only initdb (refusing C.UTF-8), pg_ctl and postgres: no-locale, asyncpg probe and createdb."""
    assert BINDIR is not None
    fake = clusters.var_dir() / "bin"
    fake.mkdir(mode=0o755)
    for program in ("pg_ctl", "postgres"):
        (fake / program).symlink_to(BINDIR / program)
    (fake / "initdb").write_text(
        "#!/bin/sh\n"
        'for arg in "$@"; do\n'
        '  if [ "$arg" = "--locale=C.UTF-8" ]; then\n'
        "    echo 'initdb: error: invalid locale name \"C.UTF-8\"' >&2; exit 1\n"
        "  fi\n"
        "done\n"
        f'exec {BINDIR / "initdb"} "$@"\n'
    )
    (fake / "initdb").chmod(0o755)
    monkeypatch.setattr(embedded.start, "find_postgres_bindir", lambda: fake)

    cluster = clusters.ensure(clusters.var_dir())  # the event loop is running: the probe must not use it

    assert any("--no-locale" in line for line in clusters.log)
    assert await _fetchval(cluster.dsn, "SELECT current_database()") == "handover"
    assert await _fetchval(cluster.dsn, "SELECT datcollate FROM pg_database WHERE datname = 'handover'") == "C"


async def test_pgserver_fallback_when_there_are_no_binaries(
    clusters: Clusters, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pgserver")
    monkeypatch.setattr(embedded.start, "find_postgres_bindir", lambda: None)
    var_dir = clusters.var_dir()

    first = clusters.ensure(var_dir)

    assert first.started_here
    assert first.data_dir == var_dir / "pg" / "pgserver"
    assert await _fetchval(first.dsn, "SELECT current_database()") == "handover"
    if ROOT:
        assert _process_user(_postmaster_pid(first.data_dir)) == "pgserver"

    second = clusters.ensure(var_dir)
    assert not second.started_here
    second.stop()
    assert await _fetchval(first.dsn, "SELECT 1") == 1

    first.stop()
    first.stop()
    assert not (first.data_dir / "postmaster.pid").exists()

    third = clusters.ensure(var_dir)  # pgserver's per-process handle cache must not hide the stopped server
    assert third.started_here
    assert await _fetchval(third.dsn, "SELECT current_database()") == "handover"
