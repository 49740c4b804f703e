"""The fallback for machines with no PostgreSQL binaries at all: the `pgserver` package (PostgreSQL 16)."""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from service.store.embedded._common import DATABASE, EmbeddedPostgresError
from service.store.embedded.cluster import EmbeddedCluster
from service.store.embedded.files import _exclusive, _pid_alive, _read_postmaster_pid
from service.store.embedded.programs import _describe, _ensure_database, _Runner

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
