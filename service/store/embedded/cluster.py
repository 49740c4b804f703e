"""`EmbeddedCluster`: a running embedded server, how to reach it, and stopping it (only if we started it)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from service.store.embedded._common import STOP_TIMEOUT_SECONDS, EmbeddedPostgresError
from service.store.embedded.files import (
    _pid_alive,
    _read_port,
    _read_postmaster_pid,
    system_place,
    unreachable_directory,
)
from service.store.embedded.programs import _default_runner, _describe, _log_file_for, _Runner, _server_user

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


EMBEDDED_PG_DIR_ENV = "HANDOVER_EMBEDDED_PG_DIR"


def locate_cluster(var_dir: Path) -> Path:
    """The `pg/` directory of var_dir's embedded cluster, made or not, as `ensure_cluster` decides it now:
    `var_dir/pg`, or, when we are root and the server user cannot reach var_dir (a checkout in a mode-700 home),
    `pg/` in var_dir's own directory under HANDOVER_EMBEDDED_ROOT. For whoever must find, stop or remove that
    cluster (tests, cleaning up) without starting it; nothing is made or changed."""
    var_dir = Path(var_dir).resolve()
    user = _server_user()
    if user is None or not var_dir.is_dir() or unreachable_directory(var_dir, user) is None:
        return var_dir / "pg"
    return system_place(var_dir) / "pg"


def following_port(dsn: str, pg_dir: Path) -> Callable[[], str]:
    """`dsn` with the port the cluster under `pg_dir` listens on now (its `port` file): a cluster that had to
    come back on another port is found there by every new connection."""

    def current() -> str:
        port = _read_port(pg_dir)
        parts = urlsplit(dsn)
        if port is None or parts.port is None or parts.port == port:
            return dsn
        netloc = parts.netloc.rsplit(":", 1)[0] + f":{port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    return current
