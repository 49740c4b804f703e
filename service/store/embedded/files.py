"""The cluster directory's files, permissions, ports and managed configuration."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pwd
import re
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from service.store.embedded._common import (
    _CONF_BEGIN,
    _CONF_BLOCK,
    _CONF_END,
    _SOCKET_PATH_MAX,
    HOST,
    SYSTEM_CLUSTERS_ROOT,
    EmbeddedPostgresError,
)

# --------------------------------------------------------------------------------------------- files and permissions


def unreachable_directory(var_dir: Path, user: pwd.struct_passwd) -> Path | None:
    """The first of var_dir and the directories above it that `user` cannot search (we change none of them)."""
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
            return directory
    return None


def system_place(var_dir: Path) -> Path:
    """The directory under HANDOVER_EMBEDDED_ROOT (default /var/lib/handover/clusters) that is var_dir's own:
    named after the checkout and a hash of var_dir's path. Computed only; nothing is made."""
    root = Path(os.environ.get("HANDOVER_EMBEDDED_ROOT") or SYSTEM_CLUSTERS_ROOT)
    digest = hashlib.sha256(str(var_dir).encode("utf-8")).hexdigest()[:12]
    checkout = re.sub(r"[^A-Za-z0-9_.-]", "_", var_dir.parent.name)[:40] or "checkout"
    return root / f"{checkout}-{digest}"


def system_cluster_dir(var_dir: Path, user: pwd.struct_passwd) -> Path:
    """Where a checkout the server user cannot reach (a root checkout in a mode-700 home) keeps its cluster:
    one directory per var directory under HANDOVER_EMBEDDED_ROOT (default /var/lib/handover/clusters), named
    after the checkout and a hash of its path, so it is found again on every start. The directories made here
    are searchable (0755) and the cluster's own `pg/` inside is given to the server user as usual; the user's
    own directories are left as they are."""
    place = system_place(var_dir)
    for directory in (place.parent, place):
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    blocking = unreachable_directory(place, user)
    if blocking is not None:
        raise EmbeddedPostgresError(
            f"The embedded PostgreSQL runs as the system user {user.pw_name!r} (it refuses to run as root), and "
            f"neither {var_dir} nor {place} is reachable by it ({blocking} is not searchable). Set "
            "HANDOVER_DATABASE_URL to use an existing PostgreSQL, or HANDOVER_EMBEDDED_ROOT to a directory "
            f"{user.pw_name!r} can reach."
        )
    (var_dir / "pg-location").write_text(f"{place / 'pg'}\n", encoding="utf-8")  # for people: where it went
    return place


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
