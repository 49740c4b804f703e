"""The private PostgreSQL cluster under `<var>/pg`, used when HANDOVER_DATABASE_URL is not set.

This module owns that cluster's files and lifecycle, nothing else (schema and SQL live in the other modules):

* `<var>/pg/data/`      PGDATA: created by initdb on first use, kept across restarts;
* `<var>/pg/port`       the TCP port on 127.0.0.1, picked at init and re-picked (and rewritten) if taken later;
* `<var>/pg/password`   the random password of the `handover` superuser (mode 0600);
* `<var>/pg/server.log` the server's log; its tail is attached to every `EmbeddedPostgresError`;
* `<var>/pg/run/`       the unix-socket directory (sockets are disabled when that path would be too long).

`ensure_cluster` initialises the cluster if needed, starts it (or reuses a server already running on the same
data directory), waits until it accepts connections, makes sure the `handover` database exists and returns an
`EmbeddedCluster` holding the DSN. `EmbeddedCluster.stop` stops the server only if this process started it.

PostgreSQL refuses to run as root, so when we are root the `<var>/pg` tree is chowned to the `postgres` system
user and every PostgreSQL program (initdb, pg_ctl, pg_isready, psql) runs as that user. No permission is changed
outside `<var>/pg`: if `postgres` cannot traverse to it, `ensure_cluster` says so and stops.

Readiness is checked with `pg_isready` (and the database created with `psql`) from the same bindir; without those
programs an asyncpg connection is made on a throwaway thread with its own event loop. Nothing calls
`asyncio.run` on the caller's thread, so `ensure_cluster` may be called while an event loop is running (it then
blocks that loop for the second or two a start takes; `asyncio.to_thread` avoids that).

With no PostgreSQL binaries at all, the optional `pgserver` package (bundling PostgreSQL 16) is imported instead;
its cluster lives in `<var>/pg/pgserver`, trusts local connections and is reached over a unix socket only.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pwd
import re
import secrets
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import asyncpg

T = TypeVar("T")

DATABASE = "handover"
SUPERUSER = "handover"
SERVER_USER = "postgres"  # the system user the server runs as when we are root
HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 60
READY_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 60

_REQUIRED_PROGRAMS = ("initdb", "pg_ctl", "postgres")
_SOCKET_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux
_START_ATTEMPTS = 3
_LOG_TAIL_LINES = 40
_CONF_BEGIN = "# >>> handover embedded settings: managed by service/store/embedded.py, rewritten on every start"
_CONF_END = "# <<< handover embedded settings"
_CONF_BLOCK = re.compile(rf"^{re.escape(_CONF_BEGIN)}$.*?^{re.escape(_CONF_END)}$\n?", re.MULTILINE | re.DOTALL)
_BIND_FAILURE = re.compile(r"could not bind|could not create any TCP/IP sockets|address already in use", re.I)
_BAD_LOCALE = re.compile(r"invalid locale|locale .*not (supported|found|available)", re.I)


class EmbeddedPostgresError(RuntimeError):
    """The embedded cluster could not be set up, started or stopped; the message says why and what to do."""


# --------------------------------------------------------------------------------------------- the cluster


@dataclass
class _StopState:
    lock: threading.RLock = field(default_factory=threading.RLock)
    stopped: bool = False


@dataclass(frozen=True)
class EmbeddedCluster:
    """A running embedded cluster and how to reach it."""

    data_dir: Path
    dsn: str = field(repr=False)  # carries the password
    started_here: bool
    _runner: _Runner | None = field(default=None, kw_only=True, repr=False, compare=False)
    _postmaster_pid: int | None = field(default=None, kw_only=True, repr=False, compare=False)
    _state: _StopState = field(default_factory=_StopState, init=False, repr=False, compare=False)

    def stop(self) -> None:
        """`pg_ctl stop -m fast` and wait, if this process started the server; otherwise do nothing.

        Idempotent and safe from an atexit handler, a signal handler or another thread: concurrent calls are
        serialised, and a server that is already gone (or was replaced by one started elsewhere) is left alone.
        """
        if not self.started_here:
            return
        with self._state.lock:  # re-entrant, so a signal handler interrupting stop() cannot deadlock
            if self._state.stopped:
                return
            if not self._our_server_is_running():
                self._state.stopped = True
                return
            runner = self._runner if self._runner is not None else _default_runner(self.data_dir.parent)
            log_file = _log_file_for(self.data_dir)
            result = runner.run("pg_ctl", _stop_args(self.data_dir, "fast"), timeout=STOP_TIMEOUT_SECONDS + 30)
            if result.returncode != 0 and self._our_server_is_running():
                result = runner.run("pg_ctl", _stop_args(self.data_dir, "immediate"), timeout=STOP_TIMEOUT_SECONDS)
                if result.returncode != 0 and self._our_server_is_running():
                    raise EmbeddedPostgresError(_describe("could not stop the embedded PostgreSQL", result, log_file))
            self._state.stopped = True

    def _our_server_is_running(self) -> bool:
        info = _read_postmaster_pid(self.data_dir)
        if info is None or not _pid_alive(info[0]):
            return False
        return self._postmaster_pid is None or info[0] == self._postmaster_pid


def _stop_args(data_dir: Path, mode: str) -> list[str]:
    return ["stop", "-D", str(data_dir), "-m", mode, "-w", "-t", str(STOP_TIMEOUT_SECONDS)]


# --------------------------------------------------------------------------------------------- finding binaries


def find_postgres_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, or None if this machine has none.

    Looks at PATH first (resolving symlinks such as /usr/local/bin/pg_ctl), then `pg_config --bindir`, then the
    newest /usr/lib/postgresql/<version>/bin (Debian and Ubuntu keep the server programs off PATH).
    """
    for program in ("pg_ctl", "initdb"):
        found = shutil.which(program)
        if found is not None:
            candidate = Path(found).resolve().parent
            if _is_bindir(candidate):
                return candidate
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        try:
            reported = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            reported = ""  # a broken pg_config is only one of three places to look
        if reported and _is_bindir(Path(reported)):
            return Path(reported).resolve()
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    return next((candidate for candidate in versions if _is_bindir(candidate)), None)


def _is_bindir(directory: Path) -> bool:
    return all(_is_executable(directory / program) for program in _REQUIRED_PROGRAMS)


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _version_key(bindir: Path) -> tuple[int, ...]:
    parts = bindir.parent.name.split(".")
    return tuple(int(part) for part in parts) if all(part.isdigit() for part in parts) else (-1,)


# --------------------------------------------------------------------------------------------- running programs


@dataclass(frozen=True)
class _Result:
    argv: list[str]
    returncode: int
    output: str  # stdout and stderr, interleaved


@dataclass(frozen=True)
class _Runner:
    """Runs the PostgreSQL programs of one bindir as the server's user (None: as ourselves)."""

    bindir: Path
    cwd: Path
    user: pwd.struct_passwd | None

    def has(self, program: str) -> bool:
        return _is_executable(self.bindir / program)

    def run(
        self, program: str, args: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
    ) -> _Result:
        argv = [str(self.bindir / program), *args]
        environment = self._environment()
        environment.update(env or {})
        user = self.user
        # Output goes to a temporary file, not a pipe: pg_ctl start leaves a daemon behind, and a daemon holding
        # the pipe would keep subprocess.run waiting.
        with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as output:
            try:
                completed = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    cwd=self.cwd,
                    env=environment,
                    timeout=timeout,
                    check=False,
                    user=user.pw_uid if user is not None else None,
                    group=user.pw_gid if user is not None else None,
                    extra_groups=os.getgrouplist(user.pw_name, user.pw_gid) if user is not None else None,
                    umask=0o077,
                )
            except subprocess.TimeoutExpired as exc:
                raise EmbeddedPostgresError(f"{shlex.join(argv)} did not finish within {timeout:.0f} s") from exc
            except OSError as exc:
                raise EmbeddedPostgresError(f"could not run {argv[0]}: {exc}") from exc
            output.seek(0)
            return _Result(argv, completed.returncode, output.read())

    def _environment(self) -> dict[str, str]:
        # No inherited PG* variables (PGDATA, PGPORT, PGHOST... would redirect the programs) and a fixed,
        # always-present message locale; the cluster's own locale is passed to initdb explicitly.
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PG", "LC_")) and key not in {"LANG", "LANGUAGE"}
        }
        environment["LC_ALL"] = "C"
        if self.user is not None:
            home = self.user.pw_dir if os.path.isdir(self.user.pw_dir) else str(self.cwd)
            environment.update(HOME=home, USER=self.user.pw_name, LOGNAME=self.user.pw_name)
        return environment


def _server_user() -> pwd.struct_passwd | None:
    """The system user to run PostgreSQL as: `postgres` when we are root, else None (ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise EmbeddedPostgresError(
            f"Running as root, but there is no {SERVER_USER!r} system user to run the embedded PostgreSQL as "
            "(PostgreSQL refuses to run as root). Create one (e.g. `useradd --system --home-dir "
            "/var/lib/postgresql postgres`), run Handover as an unprivileged user, or set HANDOVER_DATABASE_URL."
        ) from None


def _default_runner(pg_dir: Path) -> _Runner:
    bindir = find_postgres_bindir()
    if bindir is None:
        raise EmbeddedPostgresError("no PostgreSQL binaries found (PATH, pg_config, /usr/lib/postgresql/*/bin)")
    return _Runner(bindir, pg_dir, _server_user())


def _describe(what: str, result: _Result | None, log_file: Path | None) -> str:
    parts = [what]
    if result is not None:
        parts.append(f"$ {shlex.join(result.argv)}  (exit status {result.returncode})\n{result.output.strip()}")
    if log_file is not None:
        tail = _tail(log_file)
        parts.append(f"last lines of {log_file}:\n{tail}" if tail else f"{log_file} is empty or missing")
    return "\n".join(parts)


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 32_768))
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _log_file_for(data_dir: Path) -> Path:
    pgserver_log = data_dir / "log"  # pgserver keeps its log inside its data directory
    return pgserver_log if data_dir.name == "pgserver" else data_dir.parent / "server.log"


# --------------------------------------------------------------------------------------------- files and permissions


def _check_traversable(var_dir: Path, user: pwd.struct_passwd) -> None:
    """Fail clearly unless `user` can search var_dir and every directory above it (we change none of them)."""
    groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    for directory in (var_dir, *var_dir.parents):
        info = directory.stat()
        if info.st_uid == user.pw_uid:
            searchable = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            searchable = info.st_mode & stat.S_IXGRP
        else:
            searchable = info.st_mode & stat.S_IXOTH
        if not searchable:
            raise EmbeddedPostgresError(
                f"The embedded PostgreSQL runs as the system user {user.pw_name!r} (it refuses to run as root), "
                f"but {user.pw_name!r} cannot get to {var_dir}: {directory} (mode {stat.filemode(info.st_mode)}) "
                "is not searchable by it, and Handover does not change permissions outside its var directory. "
                "Set HANDOVER_DATABASE_URL to use an existing PostgreSQL, or move the checkout / HANDOVER_VAR_DIR "
                f"somewhere {user.pw_name!r} can reach (e.g. under /srv or /tmp)."
            )


def _chown_tree(pg_dir: Path, user: pwd.struct_passwd) -> None:
    """chown -R pg_dir to the server user, skipping trees already theirs (data/) or not ours (pgserver/)."""
    uid, gid = user.pw_uid, user.pw_gid

    def give(path: Path) -> None:
        info = path.lstat()
        if (info.st_uid, info.st_gid) != (uid, gid):
            os.chown(path, uid, gid, follow_symlinks=False)

    for current, dirnames, filenames in os.walk(pg_dir):
        here = Path(current)
        give(here)
        if here == pg_dir:
            if "pgserver" in dirnames:
                dirnames.remove("pgserver")
            if "data" in dirnames and (pg_dir / "data").lstat().st_uid == uid:
                dirnames.remove("data")  # initdb made it as the server user: everything inside is theirs
        for name in filenames:
            give(here / name)


def _write_file(path: Path, text: str, user: pwd.struct_passwd | None, mode: int = 0o600) -> None:
    """Replace path atomically with a file of the given mode, owned by `user` (None: by us)."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        if user is not None:
            os.chown(temporary, user.pw_uid, user.pw_gid)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


@contextlib.contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    """Serialise ensure_cluster across threads and processes sharing one var directory."""
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read_postmaster_pid(data_dir: Path) -> tuple[int, int | None] | None:
    """(pid, port) from data_dir/postmaster.pid, or None if there is no (readable, complete) file."""
    try:
        lines = (data_dir / "postmaster.pid").read_text(encoding="utf-8", errors="replace").splitlines()
        pid = int(lines[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None
    port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
    return pid, port


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, belongs to someone else
    return True


# --------------------------------------------------------------------------------------------- ports and config


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the postmaster does
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
        return True


def _read_port(pg_dir: Path) -> int | None:
    try:
        port = int((pg_dir / "port").read_text(encoding="utf-8").strip())
    except (FileNotFoundError, ValueError):
        return None
    return port if 0 < port < 65536 else None


def _socket_dir_setting(run_dir: Path, port: int) -> str:
    """The unix_socket_directories value: run_dir, or '' (TCP only) when its socket path would be too long."""
    path = str(run_dir)
    if len(f"{path}/.s.PGSQL.{port}") > _SOCKET_PATH_MAX or any(char in path for char in ",'\"\\"):
        return ""
    return path


def _write_settings(data_dir: Path, port: int, socket_dirs: str, user: pwd.struct_passwd | None) -> None:
    """(Re)write our block at the end of postgresql.conf; later lines win, so it overrides initdb's defaults."""
    conf = data_dir / "postgresql.conf"
    block = "\n".join(
        [
            _CONF_BEGIN,
            f"listen_addresses = '{HOST}'",
            f"port = {port}",
            f"unix_socket_directories = '{socket_dirs}'",
            "unix_socket_permissions = 0700",
            "fsync = on",
            "synchronous_commit = on",
            "full_page_writes = on",
            "max_connections = 200",
            _CONF_END,
            "",
        ]
    )
    text = _CONF_BLOCK.sub("", conf.read_text(encoding="utf-8")).rstrip("\n")
    _write_file(conf, f"{text}\n\n{block}", user)


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
    if user is not None:
        _check_traversable(var_dir, user)
    pg_dir = var_dir / "pg"
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


def _ensure_database(
    runner: _Runner, admin_dsn: str, password: str | None, log_file: Path, log: Callable[[str], None]
) -> None:
    """CREATE DATABASE handover unless it exists: psql if present, else asyncpg on a throwaway thread."""
    if runner.has("psql"):
        env = {"PGCONNECT_TIMEOUT": "10", **({"PGPASSWORD": password} if password is not None else {})}
        psql = ["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d", admin_dsn, "-c"]
        exists = "SELECT 1 FROM pg_database WHERE datname = 'handover'"
        result = runner.run("psql", [*psql, exists], env=env, timeout=60)
        if result.returncode != 0:
            raise EmbeddedPostgresError(_describe("could not query the embedded PostgreSQL", result, log_file))
        if "1" in result.output.split():
            return
        result = runner.run("psql", [*psql, "CREATE DATABASE handover"], env=env, timeout=60)
        if result.returncode != 0:
            if "already exists" in result.output:  # created meanwhile by someone not holding our lock
                return
            raise EmbeddedPostgresError(_describe("could not create the database handover", result, log_file))
    elif not _in_thread(_create_database(admin_dsn, password)):
        return
    log(f"embedded PostgreSQL: created database {DATABASE}")


def _in_thread(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a new thread with its own event loop (the caller's may be running)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedded-pg") as executor:
        return executor.submit(asyncio.run, coroutine).result()


async def _probe(dsn: str, password: str | None) -> None:
    connection = await asyncpg.connect(dsn, password=password, timeout=5)
    await connection.close()


async def _create_database(admin_dsn: str, password: str | None) -> bool:
    """True if it created the database, False if it was already there."""
    connection = await asyncpg.connect(admin_dsn, password=password, timeout=10)
    try:
        if await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
            return False
        try:
            await connection.execute("CREATE DATABASE handover")
        except asyncpg.DuplicateDatabaseError:
            return False
        return True
    finally:
        await connection.close()


# --------------------------------------------------------------------------------------------- pgserver fallback


def _ensure_pgserver(var_dir: Path, log: Callable[[str], None]) -> EmbeddedCluster:
    """The same contract on top of pgserver (PostgreSQL 16 in a wheel), for machines with no PostgreSQL at all."""
    try:
        from pgserver._commands import POSTGRES_BIN_PATH  # noqa: PLC0415 - optional; only without binaries
        from pgserver.postgres_server import PostgresServer, get_server  # noqa: PLC0415
    except ImportError as exc:
        raise EmbeddedPostgresError(
            "No PostgreSQL binaries found (PATH, pg_config, /usr/lib/postgresql/*/bin) and the fallback package "
            "pgserver is not installed. Install PostgreSQL (e.g. `apt-get install postgresql`), install "
            "`handover[embedded]` (pgserver), or set HANDOVER_DATABASE_URL to an existing server."
        ) from exc
    bindir = Path(POSTGRES_BIN_PATH)
    pg_dir = var_dir / "pg"
    pg_dir.mkdir(parents=True, exist_ok=True)
    data_dir = pg_dir / "pgserver"
    log_file = data_dir / "log"
    root = os.geteuid() == 0
    if root:
        # As root, pgserver runs the server as a system user `pgserver` (creating it with useradd if needed) and
        # adds g+rx,o+rx to every directory above its data and binaries. Refuse rather than let it loosen
        # directories that are not ours (/, /root, ...).
        _check_pgserver_prefixes(var_dir, bindir)
        try:
            pwd.getpwnam("pgserver")
        except KeyError:
            log("embedded PostgreSQL (pgserver): pgserver will create the system user 'pgserver' to run the server")
    log(f"embedded PostgreSQL (pgserver fallback, binaries {bindir}): data in {data_dir}, log in {log_file}")
    with _exclusive(pg_dir / ".lock"):
        before = _read_postmaster_pid(data_dir)
        running_before = before is not None and _pid_alive(before[0])
        if not running_before:
            # get_server() caches one handle per data directory for the life of the process; after a stop() that
            # handle describes a dead server, so drop it and let get_server() start the cluster again.
            PostgresServer._instances.pop(data_dir.resolve(), None)
        began = time.monotonic()
        try:
            server = get_server(data_dir, cleanup_mode=None)
        except (subprocess.SubprocessError, OSError, AssertionError, RuntimeError) as exc:
            raise EmbeddedPostgresError(_describe(f"pgserver could not start: {exc!r}", None, log_file)) from exc
        system_user: str | None = server.system_user
        runner = _Runner(bindir, data_dir, pwd.getpwnam(system_user) if system_user is not None else None)
        pid = int(server.get_pid() or 0) or None
        if running_before:
            log(f"embedded PostgreSQL (pgserver): reusing the server already running (pid {pid}); left running at exit")
        else:
            log(f"embedded PostgreSQL (pgserver): started (pid {pid}) in {time.monotonic() - began:.1f} s")
        cluster = EmbeddedCluster(
            data_dir, str(server.get_uri(DATABASE)), not running_before, _runner=runner, _postmaster_pid=pid
        )
        try:
            _ensure_database(runner, str(server.get_uri()), None, log_file, log)
        except BaseException:
            cluster.stop()
            raise
    return cluster


def _check_pgserver_prefixes(var_dir: Path, bindir: Path) -> None:
    wanted = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
    package_dir = bindir.parent.parent  # .../site-packages/pgserver; pgserver may chmod its own files
    for directory in (*var_dir.parents, *package_dir.parents):
        mode = directory.stat().st_mode
        if mode & wanted != wanted:
            raise EmbeddedPostgresError(
                f"pgserver (the fallback used because no PostgreSQL binaries are installed) would chmod {directory} "
                f"(mode {stat.filemode(mode)}) so that its 'pgserver' user can reach its files; Handover does not "
                "change permissions outside its var directory. Install PostgreSQL, set HANDOVER_DATABASE_URL, or "
                "move the checkout / HANDOVER_VAR_DIR / virtualenv under directories readable by all."
            )
