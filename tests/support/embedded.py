"""Scratch var directories for tests that start embedded PostgreSQL clusters, and leaving nothing behind.

A scratch var directory lives under the checkout's `var/`, as the real one does, so a test runs in the layout the
checkout is in: `var/<scratch>/pg` normally, or, as root in a mode-700 home, a directory of its own under
/var/lib/handover/clusters (`locate_cluster` says which). `discard` stops whatever server runs from that cluster
(a `handover serve` killed by SIGKILL leaves its server running) and removes both directories; every cluster
handed out is remembered, and `leftovers()` (checked at the end of the session) names any still running or on disk.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from service.store.embedded import find_postgres_bindir, locate_cluster

ROOT = Path(__file__).resolve().parents[2]
VAR = ROOT / "var"
BINDIR = find_postgres_bindir()
_handed_out: list[tuple[Path, Path]] = []  # (var directory, its cluster's pg/ directory)


def server_user() -> pwd.struct_passwd | None:
    """Who the embedded server runs as: `postgres` when we are root (PostgreSQL refuses root), else ourselves."""
    return pwd.getpwnam("postgres") if os.geteuid() == 0 else None


def pg_ctl(*args: str) -> subprocess.CompletedProcess[str]:
    """pg_ctl as the server's user, as service/store/embedded runs it."""
    assert BINDIR is not None
    user = server_user()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "LC_"))} | {"LC_ALL": "C"}
    return subprocess.run(
        [str(BINDIR / "pg_ctl"), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        cwd="/",
        env=env,
        user=user.pw_uid if user is not None else None,
        group=user.pw_gid if user is not None else None,
    )


def postmaster_alive(data_dir: Path) -> bool:
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def processes_under(path: Path) -> list[int]:
    """Processes whose command line names `path` (a postmaster names its data directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError):
                if str(path) in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
    return found


def scratch_var_dir(prefix: str, *, private_parent: bool = False) -> Path:
    """A fresh var directory under the checkout's var/ (mode 0755, so the server user can traverse it when the
    checkout allows). `private_parent`: inside a mode-0700 directory of its own, the layout of a root checkout
    in a private home, whatever this checkout's own layout is."""
    path = VAR / f"{prefix}-{secrets.token_hex(4)}"
    path.mkdir(parents=True)
    path.chmod(0o755)
    if private_parent:
        path.chmod(0o700)
        path = path / "var"
        path.mkdir()
    _handed_out.append((path, locate_cluster(path)))
    return path


def stop_servers(var_dir: Path) -> None:
    """Stop any server running from var_dir's cluster, wherever it lives; wait until its processes are gone."""
    pg_dir = locate_cluster(var_dir)
    if postmaster_alive(pg_dir / "data"):
        pg_ctl("stop", "-D", str(pg_dir / "data"), "-m", "immediate", "-w")
    deadline = time.monotonic() + 10
    while processes_under(pg_dir) and time.monotonic() < deadline:
        time.sleep(0.1)


def remove(var_dir: Path) -> None:
    """Remove var_dir (with its mode-0700 parent, if it was given one) and its cluster's directory elsewhere."""
    pg_dir = locate_cluster(var_dir)
    top = var_dir.parent if var_dir.parent != VAR else var_dir
    if not pg_dir.is_relative_to(top):
        shutil.rmtree(pg_dir.parent, ignore_errors=True)  # the checkout's own directory under the clusters root
    shutil.rmtree(top, ignore_errors=True)


def discard(var_dir: Path) -> None:
    stop_servers(var_dir)
    remove(var_dir)


@contextmanager
def embedded_var_dir(prefix: str, *, private_parent: bool = False) -> Iterator[Path]:
    """A scratch var directory; on the way out nothing of its cluster is left running or on disk."""
    path = scratch_var_dir(prefix, private_parent=private_parent)
    try:
        yield path
    finally:
        discard(path)


def leftovers() -> list[str]:
    """Every cluster handed out this session that still runs or is still on disk, said in words."""
    found = []
    for var_dir, pg_dir in _handed_out:
        running = processes_under(pg_dir)
        if running:
            found.append(f"{pg_dir}: processes {running} still running")
        found.extend(f"{place} left on disk" for place in (var_dir, pg_dir) if place.exists())
    return found
