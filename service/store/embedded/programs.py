"""Finding the PostgreSQL binaries and running them (as the `postgres` system user when we are root)."""

from __future__ import annotations

import asyncio
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from service.store.embedded._common import (
    _LOG_TAIL_LINES,
    _REQUIRED_PROGRAMS,
    DATABASE,
    SERVER_USER,
    EmbeddedPostgresError,
    T,
)

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
