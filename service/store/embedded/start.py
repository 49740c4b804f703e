"""Starting (or reusing) the embedded cluster: initdb, start, wait until ready, make the database."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import asyncpg

from service.store.embedded._common import (
    _BAD_LOCALE,
    _BIND_FAILURE,
    _START_ATTEMPTS,
    DATABASE,
    HOST,
    READY_TIMEOUT_SECONDS,
    START_TIMEOUT_SECONDS,
    SUPERUSER,
    EmbeddedPostgresError,
)
from service.store.embedded.cluster import EmbeddedCluster
from service.store.embedded.files import (
    _chown_tree,
    _exclusive,
    _free_port,
    _port_is_free,
    _read_port,
    _read_postmaster_pid,
    _socket_dir_setting,
    _write_file,
    _write_settings,
    system_cluster_dir,
    unreachable_directory,
)
from service.store.embedded.pgserver import _ensure_pgserver
from service.store.embedded.programs import (
    _describe,
    _ensure_database,
    _in_thread,
    _probe,
    _Runner,
    _server_user,
    find_postgres_bindir,
)

# --------------------------------------------------------------------------------------------- the steps


def ensure_cluster(var_dir: Path, *, log: Callable[[str], None] = print) -> EmbeddedCluster:
    """Start (or reuse) the cluster under var_dir/pg and return how to reach its `handover` database.

    The caller owns the result: call `stop()` at exit (it only stops a server this process started).
    """
    var_dir = Path(var_dir).resolve()
    bindir = find_postgres_bindir()
    if bindir is None:
        return _ensure_pgserver(var_dir, log)
    user = _server_user()
    var_dir.mkdir(parents=True, exist_ok=True)
    pg_dir = var_dir / "pg"
    if user is not None and (blocking := unreachable_directory(var_dir, user)) is not None:
        pg_dir = system_cluster_dir(var_dir, user) / "pg"
        log(
            f"embedded PostgreSQL: cluster in {pg_dir}, because the server user {user.pw_name!r} cannot reach "
            f"{var_dir} ({blocking} is private); reused on every start from this checkout"
        )
    pg_dir.mkdir(mode=0o700, exist_ok=True)
    pg_dir.chmod(0o700)  # it holds the password
    data_dir = pg_dir / "data"
    log_file = pg_dir / "server.log"
    runner = _Runner(bindir, pg_dir, user)
    as_whom = f" as system user {user.pw_name!r}" if user is not None else ""
    log(f"embedded PostgreSQL: data in {data_dir}, log in {log_file} (binaries {bindir}{as_whom})")
    with _exclusive(pg_dir / ".lock"):
        if user is not None:
            _chown_tree(pg_dir, user)
        if not (data_dir / "PG_VERSION").exists():
            if (pg_dir / "pgserver" / "PG_VERSION").exists():
                log(f"embedded PostgreSQL: not using the pgserver cluster in {pg_dir / 'pgserver'} (binaries found)")
            _initdb(runner, pg_dir, log)
        password = _read_password(pg_dir)
        postmaster_pid: int | None
        if _server_running(runner, data_dir, log_file):
            postmaster_pid, port = _running_server(data_dir, pg_dir, user)
            started_here = False
            log(
                f"embedded PostgreSQL: reusing the server already running on {HOST}:{port} (pid {postmaster_pid}); "
                "not started by this process, so it is left running at exit"
            )
        else:
            began = time.monotonic()
            postmaster_pid, port = _start(runner, pg_dir, log)
            started_here = True
            log(
                f"embedded PostgreSQL: started on {HOST}:{port} (pid {postmaster_pid}) in "
                f"{time.monotonic() - began:.1f} s; this process owns it (stop() stops it)"
            )
        dsn = f"postgresql://{SUPERUSER}:{quote(password, safe='')}@{HOST}:{port}/{DATABASE}"
        cluster = EmbeddedCluster(data_dir, dsn, started_here, _runner=runner, _postmaster_pid=postmaster_pid)
        try:
            _wait_ready(runner, port, password, log_file)
            _ensure_database(runner, _admin_dsn(port), password, log_file, log)
        except BaseException:
            cluster.stop()  # never leave behind a server we started but could not hand over
            raise
    return cluster


def _initdb(runner: _Runner, pg_dir: Path, log: Callable[[str], None]) -> None:
    """initdb into a staging directory, then rename it to data/: an interrupted init leaves no half cluster."""
    data_dir = pg_dir / "data"
    if data_dir.exists():
        if any(data_dir.iterdir()):
            raise EmbeddedPostgresError(
                f"{data_dir} exists but holds no PostgreSQL cluster (no PG_VERSION). Move it away (or delete it "
                "if it holds nothing you need) and start again."
            )
        data_dir.rmdir()
    staging = pg_dir / "data.initdb"
    if staging.exists():
        shutil.rmtree(staging)  # left by an interrupted initdb: never a usable cluster
    log(f"embedded PostgreSQL: creating a new cluster in {data_dir}")
    password = secrets.token_urlsafe(32)
    fd, pwfile = tempfile.mkstemp(prefix=".pwfile.", dir=pg_dir)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"{password}\n")
        if runner.user is not None:
            os.chown(pwfile, runner.user.pw_uid, runner.user.pw_gid)
        common = ["-D", str(staging), "-U", SUPERUSER, "--auth-local=peer", "--auth-host=scram-sha-256"]
        common += [f"--pwfile={pwfile}", "-E", "UTF8", "--data-checksums"]
        result = runner.run("initdb", [*common, "--locale=C.UTF-8"], timeout=300)
        if result.returncode != 0 and _BAD_LOCALE.search(result.output):
            log("embedded PostgreSQL: locale C.UTF-8 is not available here; using --no-locale (C) instead")
            if staging.exists():
                shutil.rmtree(staging)
            result = runner.run("initdb", [*common, "--no-locale"], timeout=300)
        if result.returncode != 0:
            raise EmbeddedPostgresError(_describe("initdb failed", result, None))
    finally:
        Path(pwfile).unlink(missing_ok=True)
    port = _free_port()
    _write_file(pg_dir / "password", f"{password}\n", runner.user)
    _write_file(pg_dir / "port", f"{port}\n", runner.user)
    _write_settings(staging, port, _socket_dir_setting(pg_dir / "run", port), runner.user)
    staging.rename(data_dir)


def _read_password(pg_dir: Path) -> str:
    try:
        password = (pg_dir / "password").read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        password = ""
    if not password:
        raise EmbeddedPostgresError(
            f"{pg_dir / 'password'} is missing or empty, so the cluster in {pg_dir / 'data'} cannot be reached. "
            f"Restore the file, or delete {pg_dir} to start a fresh cluster (its data is lost)."
        )
    return password


def _server_running(runner: _Runner, data_dir: Path, log_file: Path) -> bool:
    result = runner.run("pg_ctl", ["status", "-D", str(data_dir)], timeout=30)
    if result.returncode == 0:
        return True
    if result.returncode == 3:  # "no server running"
        return False
    raise EmbeddedPostgresError(_describe(f"cannot tell whether a server runs on {data_dir}", result, log_file))


def _running_server(data_dir: Path, pg_dir: Path, user: pwd.struct_passwd | None) -> tuple[int, int]:
    info = _read_postmaster_pid(data_dir)
    if info is None or info[1] is None:
        raise EmbeddedPostgresError(f"a server runs on {data_dir} but its postmaster.pid names no port")
    pid, port = info[0], info[1]
    if _read_port(pg_dir) != port:
        _write_file(pg_dir / "port", f"{port}\n", user)
    return pid, port


def _start(runner: _Runner, pg_dir: Path, log: Callable[[str], None]) -> tuple[int, int]:
    """pg_ctl start on the recorded port, moving to a free one if it is taken. Returns (pid, port)."""
    data_dir, log_file, run_dir = pg_dir / "data", pg_dir / "server.log", pg_dir / "run"
    run_dir.mkdir(mode=0o700, exist_ok=True)
    if runner.user is not None:
        os.chown(run_dir, runner.user.pw_uid, runner.user.pw_gid)
    port = _read_port(pg_dir)
    for attempt in range(1, _START_ATTEMPTS + 1):
        if port is None or not _port_is_free(port):
            fresh = _free_port()
            if port is not None:
                log(f"embedded PostgreSQL: port {port} is taken; moving to port {fresh}")
            port = fresh
        _write_file(pg_dir / "port", f"{port}\n", runner.user)
        socket_dirs = _socket_dir_setting(run_dir, port)
        if not socket_dirs:
            log(f"embedded PostgreSQL: {run_dir} is too long for a unix socket; listening on TCP only")
        _write_settings(data_dir, port, socket_dirs, runner.user)
        log_offset = log_file.stat().st_size if log_file.exists() else 0
        args = ["start", "-D", str(data_dir), "-l", str(log_file), "-w", "-t", str(START_TIMEOUT_SECONDS)]
        result = runner.run("pg_ctl", args, timeout=START_TIMEOUT_SECONDS + 30)
        if result.returncode == 0:
            info = _read_postmaster_pid(data_dir)
            if info is None:
                raise EmbeddedPostgresError(
                    _describe("the server started but wrote no postmaster.pid", result, log_file)
                )
            return info[0], port
        if attempt < _START_ATTEMPTS and _BIND_FAILURE.search(_read_from(log_file, log_offset)):
            log(f"embedded PostgreSQL: port {port} was taken while starting; trying another")
            port = None
            continue
        raise EmbeddedPostgresError(_describe("could not start the embedded PostgreSQL", result, log_file))
    raise AssertionError("unreachable")  # every attempt returns, continues or raises


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _wait_ready(runner: _Runner, port: int, password: str, log_file: Path) -> None:
    """Until the server accepts connections: pg_isready if present, else asyncpg on a throwaway thread."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    if runner.has("pg_isready"):
        args = ["-q", "-h", HOST, "-p", str(port), "-d", "postgres", "-U", SUPERUSER, "-t", "3"]
        while True:
            result = runner.run("pg_isready", args, timeout=15)
            if result.returncode == 0:
                return
            if result.returncode == 3 or time.monotonic() > deadline:  # 3: bad arguments, retrying cannot help
                raise EmbeddedPostgresError(_describe(f"the server on {HOST}:{port} is not ready", result, log_file))
            time.sleep(0.2)
    while True:
        try:
            _in_thread(_probe(_admin_dsn(port), password))
        except (OSError, TimeoutError, asyncpg.CannotConnectNowError) as exc:
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(
                    _describe(f"the server on {HOST}:{port} is not ready: {exc}", None, log_file)
                ) from exc
            time.sleep(0.2)
        else:
            return


def _admin_dsn(port: int) -> str:
    """The maintenance database, without the password (that goes in PGPASSWORD, never on a command line)."""
    return f"postgresql://{SUPERUSER}@{HOST}:{port}/postgres"
