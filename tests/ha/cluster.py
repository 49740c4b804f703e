"""A real highly available PostgreSQL on 127.0.0.1 for the HA tests and `make bench-failover`: one etcd member
(Debian's etcd-server), two PostgreSQL 15 nodes managed by Patroni (PyPI) with synchronous replication and
pg_rewind, and HAProxy (Debian's) routing to whichever node Patroni's REST API calls the primary (GET /primary).

Patroni and etcd run as the `postgres` user when we are root (PostgreSQL refuses root), with a Python that user
may execute and the project's site-packages on PYTHONPATH, or, when that user cannot read them (a checkout in a
private mode-700 home), a copy of Patroni's dependency closure (tests/ha/pythonpath.py). Everything lives under
one directory in /tmp (mode 755, owned by the user the cluster runs as) and is stopped and removed by `close`,
which leaves no process and no file behind.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ha.pythonpath import CAN_READ, copy_closure, site_packages
from tests.support.hub import free_port

PG_BINDIR = Path("/usr/lib/postgresql/15/bin")
TEST_TIMINGS = {"ttl": 20, "loop_wait": 1, "retry_timeout": 5}  # Patroni 4's minimum ttl is 20 s
PRODUCTION_TIMINGS = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10}  # Patroni's defaults (docs/operations.md)


def missing_parts() -> list[str]:
    """What this machine lacks to run the cluster (empty: all there)."""
    found = []
    if not (PG_BINDIR / "postgres").exists():
        found.append(f"PostgreSQL 15 binaries in {PG_BINDIR} (apt-get install postgresql-15)")
    for program, package in (("etcd", "etcd-server"), ("haproxy", "haproxy")):
        if shutil.which(program) is None:
            found.append(f"{program} (apt-get install {package})")
    try:
        import patroni  # noqa: F401
    except ImportError:
        found.append("Patroni (pip install -e '.[ha]')")
    return found


def require_ha_parts() -> None:
    """Skip a test this machine cannot run (a developer without etcd or HAProxy); under CI, where .ci/run installs
    them all, fail instead: the HA tests are never skipped in CI."""
    missing = missing_parts()
    if not missing:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"the HA tests need {', '.join(missing)}: .ci/run installs them")
    pytest.skip(f"the HA tests need {', '.join(missing)}")


def _run_as() -> pwd.struct_passwd | None:
    return pwd.getpwnam("postgres") if os.geteuid() == 0 else None


def _python_for(user: pwd.struct_passwd | None) -> str:
    """A Python 3 of our minor version that `user` may execute (the venv's may live under /root)."""
    minor = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, shutil.which(minor, path="/usr/local/bin:/usr/bin") or ""):
        if candidate and _can_run(user, [candidate, "-c", "pass"]):
            return candidate
    raise AssertionError(f"no {minor} the postgres user may run: apt-get install {minor}")


def _can_run(user: pwd.struct_passwd | None, argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, **_as(user), capture_output=True, timeout=30, check=False).returncode == 0
    except OSError:
        return False


def _as(user: pwd.struct_passwd | None) -> dict[str, Any]:
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user is not None else {}


def http(method: str, url: str, body: dict[str, Any] | None = None, timeout: float = 3) -> tuple[int, Any]:
    """(status, JSON body or text); status 0 when nothing answered."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 (http only)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 (http to 127.0.0.1 only)
            raw, status = resp.read(), resp.status
    except urllib.error.HTTPError as err:
        raw, status = err.read(), err.code
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


@dataclass
class Node:
    """One Patroni-managed PostgreSQL node."""

    name: str
    directory: Path
    pg_port: int
    rest_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def config_path(self) -> Path:
        return self.directory / "patroni.yml"

    @property
    def log_path(self) -> Path:
        return self.directory / "patroni.log"

    def dsn(self, database: str = "handover") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/{database}"

    def rest(self, path: str) -> tuple[int, Any]:
        return http("GET", f"http://127.0.0.1:{self.rest_port}{path}")

    def is_primary(self) -> bool:
        return self.rest("/primary")[0] == 200

    def postmaster_pid(self) -> int | None:
        with suppress(OSError, ValueError, IndexError):
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
            os.kill(pid, 0)
            return pid
        return None

    def kill_patroni(self) -> None:
        """SIGKILL Patroni alone: its postmaster lives on (the half-dead primary)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def kill_postgres(self) -> None:
        pid = self.postmaster_pid()
        if pid is not None:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid)

    def patroni_log(self) -> str:
        with suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""


@dataclass
class PatroniCluster:
    """etcd, two Patroni nodes and HAProxy; see the module docstring."""

    base: Path
    timings: dict[str, int] = field(default_factory=lambda: dict(TEST_TIMINGS))
    scope: str = "handover-ha"
    nodes: list[Node] = field(default_factory=list)
    etcd_port: int = 0
    haproxy_port: int = 0
    _etcd: subprocess.Popen[bytes] | None = None
    _haproxy: subprocess.Popen[bytes] | None = None
    _user: pwd.struct_passwd | None = None
    _python: str = ""
    _pythonpath: str = ""

    @classmethod
    def create(cls, timings: dict[str, int] | None = None) -> PatroniCluster:
        base = Path(tempfile.mkdtemp(prefix="handover-ha-", dir="/tmp"))
        base.chmod(0o755)
        cluster = cls(base, dict(timings or TEST_TIMINGS))
        try:
            cluster._prepare()
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise
        return cluster

    def _prepare(self) -> None:
        self._user = _run_as()
        if self._user is not None:
            os.chown(self.base, self._user.pw_uid, self._user.pw_gid)
        self._python = _python_for(self._user)
        self._pythonpath = self._readable_pythonpath()
        for number in range(2):
            node = Node(f"node{number}", self.base / f"node{number}", free_port(), free_port())
            node.directory.mkdir(mode=0o700)
            if self._user is not None:
                os.chown(node.directory, self._user.pw_uid, self._user.pw_gid)
            self.nodes.append(node)

    def _readable_pythonpath(self) -> str:
        """This virtualenv's site-packages if the cluster's user may read them, else a copy under `base`."""
        packages = site_packages()
        if self._user is None or _can_run(self._user, [self._python, "-S", "-c", CAN_READ, *packages]):
            return os.pathsep.join(packages)
        return str(copy_closure(self.base / "site-packages"))

    # ------------------------------------------------------------------------------------------------ start

    def start(self) -> None:
        """etcd, node0 (the first leader), node1 (its synchronous standby), HAProxy; then the hub's database."""
        self._start_etcd()
        self.start_node(self.nodes[0])
        self.wait_for(self.nodes[0].is_primary, "node0 leads", 90)
        self.start_node(self.nodes[1])
        self.wait_for(self.is_replicating, "node1 streams synchronously from node0", 90)
        self._start_haproxy()
        self.psql(self.nodes[0], "CREATE DATABASE handover")
        self.psql(self.nodes[0], "CREATE TABLE ha_probe (note text)", database="handover")  # see test (e)

    def _spawn(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL, cwd=self.base, env=env, **_as(self._user)
            )

    def _start_etcd(self) -> None:
        self.etcd_port = free_port()
        peer = free_port()
        etcd = shutil.which("etcd") or "etcd"
        self._etcd = self._spawn(
            [
                etcd,
                "--name=ha",
                f"--data-dir={self.base / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=ha=http://127.0.0.1:{peer}",
                "--log-level=warn",
            ],
            self.base / "etcd.log",
        )
        self.wait_for(lambda: http("GET", f"http://127.0.0.1:{self.etcd_port}/health")[0] == 200, "etcd", 30)

    def start_node(self, node: Node) -> None:
        """Start (or start again) `node`'s Patroni with its configuration."""
        node.config_path.write_text(yaml.safe_dump(self._config(node)))
        if self._user is not None:
            os.chown(node.config_path, self._user.pw_uid, self._user.pw_gid)
        env = {
            "PATH": "/usr/bin:/bin",
            "LC_ALL": "C.UTF-8",
            "PYTHONPATH": self._pythonpath,
            "HOME": str(node.directory),
        }
        node.proc = self._spawn([self._python, "-S", "-m", "patroni", str(node.config_path)], node.log_path, env)

    def _config(self, node: Node) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "name": node.name,
            "log": {"level": "INFO"},
            "restapi": {"listen": f"127.0.0.1:{node.rest_port}", "connect_address": f"127.0.0.1:{node.rest_port}"},
            "etcd3": {"hosts": f"127.0.0.1:{self.etcd_port}"},
            "bootstrap": {
                "dcs": {
                    **self.timings,
                    "maximum_lag_on_failover": 1048576,
                    "synchronous_mode": True,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "use_slots": True,
                        "parameters": {
                            "wal_log_hints": "on",  # pg_rewind needs it (or data checksums)
                            "max_connections": 300,
                            "max_wal_senders": 5,
                            "max_replication_slots": 5,
                            "wal_keep_size": "128MB",
                        },
                    },
                },
                "initdb": [{"encoding": "UTF8"}, {"locale": "C"}],
                "pg_hba": [
                    "local all all trust",
                    "host replication replicator 127.0.0.1/32 trust",
                    "host all all 127.0.0.1/32 trust",
                ],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{node.pg_port}",
                "connect_address": f"127.0.0.1:{node.pg_port}",
                "data_dir": str(node.data_dir),
                "bin_dir": str(PG_BINDIR),
                "pgpass": str(node.directory / "pgpass"),
                "authentication": {
                    "replication": {"username": "replicator"},
                    "superuser": {"username": "postgres"},
                    "rewind": {"username": "postgres"},
                },
                "parameters": {
                    "unix_socket_directories": str(node.directory),
                    "shared_buffers": "32MB",
                    # Tests kill processes, never the machine: the page cache survives, so fsync buys nothing here.
                    "fsync": "off",
                },
            },
            "watchdog": {"mode": "off"},  # production: "required" with softdog (docs/operations.md)
            "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False, "nosync": False},
        }

    def _start_haproxy(self) -> None:
        """HAProxy checks each node's GET /primary every 0.5 s; a node marked down has its sessions shut."""
        self.haproxy_port = free_port()
        servers = "\n".join(f"    server {n.name} 127.0.0.1:{n.pg_port} check port {n.rest_port}" for n in self.nodes)
        config = self.base / "haproxy.cfg"
        config.write_text(HAPROXY_CONFIG.format(port=self.haproxy_port, servers=servers, inter="500ms", fall=2, rise=1))
        self._haproxy = self._spawn(
            [shutil.which("haproxy") or "haproxy", "-db", "-f", str(config)], self.base / "haproxy.log"
        )
        self.wait_for(lambda: _listening(self.haproxy_port), "HAProxy listening", 30)

    # ------------------------------------------------------------------------------------------------ state

    def multi_host_dsn(self, database: str = "handover") -> str:
        hosts = ",".join(f"127.0.0.1:{n.pg_port}" for n in self.nodes)
        return f"postgresql://postgres@{hosts}/{database}?target_session_attrs=read-write"

    def haproxy_dsn(self, database: str = "handover") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.haproxy_port}/{database}"

    def primary(self) -> Node | None:
        for node in self.nodes:
            if node.is_primary():
                return node
        return None

    def members(self) -> list[dict[str, Any]]:
        for node in self.nodes:
            status, body = node.rest("/cluster")
            if status == 200 and isinstance(body, dict):
                return list(body.get("members", []))
        return []

    def member(self, name: str) -> dict[str, Any]:
        return next((m for m in self.members() if m.get("name") == name), {})

    def is_replicating(self) -> bool:
        """Both members up, one leader and one synchronous standby streaming from it."""
        roles = {m.get("role"): m.get("state") for m in self.members()}
        return roles.get("leader") == "running" and roles.get("sync_standby") == "streaming"

    def switchover(self, leader: Node, candidate: Node) -> tuple[int, Any]:
        return http(
            "POST",
            f"http://127.0.0.1:{leader.rest_port}/switchover",
            {"leader": leader.name, "candidate": candidate.name},
            timeout=60,
        )

    def psql(self, node: Node, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [
                str(PG_BINDIR / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(node.pg_port),
                "-U",
                "postgres",
                "-d",
                database,
                "-XAtc",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={"PATH": "/usr/bin:/bin"},
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    @staticmethod
    def wait_for(predicate: Any, what: str, within: float) -> None:
        deadline = time.monotonic() + within
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting: {what}"
            time.sleep(0.2)

    def diagnostics(self) -> str:
        parts = [f"members: {self.members()}"]
        parts += [f"--- {n.name} patroni.log\n" + "\n".join(n.patroni_log().splitlines()[-30:]) for n in self.nodes]
        return "\n".join(parts)

    # ------------------------------------------------------------------------------------------------ stop

    def close(self) -> None:
        """Everything SIGKILLed (nothing here outlives the run, so a clean shutdown buys nothing), then removed."""
        for node in self.nodes:
            node.kill_patroni()
            node.kill_postgres()
        for proc in (self._haproxy, self._etcd):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        leftovers = _processes_under(self.base)
        for pid in leftovers:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.base, ignore_errors=True)
        assert not leftovers, f"processes left running under {self.base}: {leftovers}"


HAPROXY_CONFIG = """\
global
    maxconn 1000

defaults
    mode tcp
    retries 2
    timeout connect 2s
    timeout client 30m
    timeout server 30m
    timeout check 1s

listen primary
    bind 127.0.0.1:{port}
    option httpchk GET /primary
    http-check expect status 200
    default-server inter {inter} fall {fall} rise {rise} on-marked-down shutdown-sessions
{servers}
"""


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_gone(pid: int, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def _processes_under(path: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with suppress(OSError):
                if str(path) in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
    return found
