"""`handover serve --workers N`: N hub processes serving one port, kept running by a small supervisor.

Each worker is an ordinary `handover serve --workers 1` process bound with SO_REUSEPORT, so the kernel spreads
connections over them; each has its own pool, relay, checkpoint signer and safety net, and everything that must
happen once is already arbitrated in PostgreSQL (the audit sequencer's lock, checkpoint sizes, delivery leases,
alert records), as it is for several replicas on different machines. The supervisor resolves the database
first (starting the embedded cluster if needed, and migrating once), hands every worker the same DSN, forwards
SIGTERM, SIGINT and SIGHUP, and starts again a worker that dies, with a growing pause if it keeps dying.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from service.config import Settings
from service.crypto.vault import open_vault
from service.pseudonyms import Pseudonymiser
from service.store import db
from service.store.startup import prepare_database

REUSE_PORT_ENV = "HANDOVER_REUSE_PORT"
_HANDOVER = [sys.executable, "-m", "service.cli"]
_MAX_PAUSE_SECONDS = 30.0
_PR_SET_PDEATHSIG = 1


async def prepare_shared_files(settings: Settings, dsn: str) -> None:
    """Migrate, and make the development key files every worker must share, once, before any worker starts."""
    await prepare_database(dsn, within_seconds=settings.database_wait_seconds)  # waits out a failover
    Pseudonymiser.from_keys_dir(settings.keys_dir)
    pool = await db.create_pool(dsn, max_size=1)
    try:
        await open_vault(pool, settings.kek_path, create_if_missing=settings.kek_file is None)
    finally:
        await pool.close()


def _die_with_parent() -> None:
    """In the child, before exec: if the supervisor is killed outright, its workers go with it (Linux), so a
    killed `handover serve` leaves no process behind, as a single process would."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def default_workers() -> int:
    """The number of CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class _Worker:
    number: int
    process: asyncio.subprocess.Process
    started: float = field(default_factory=time.monotonic)
    failures: int = 0


@dataclass
class Supervisor:
    """Runs `count` workers against `dsn` until told to stop; `say` reports starts and restarts."""

    count: int
    dsn: str
    say: Callable[[str], None]
    cwd: Path = field(default_factory=Path.cwd)
    _workers: list[_Worker] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> int:
        """Serve until SIGTERM or SIGINT; 0 once every worker has stopped."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(signum, self._forward, signum)
        try:
            self._workers = [_Worker(n, await self._start(n)) for n in range(self.count)]
            self.say(f"{self.count} workers serving one port (SO_REUSEPORT)")
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=0.2)
                await self._restart_dead()
            await self._wait_all()
            return 0
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)

    async def _start(self, number: int) -> asyncio.subprocess.Process:
        env = {**os.environ, "HANDOVER_DATABASE_URL": self.dsn, REUSE_PORT_ENV: "1", "HANDOVER_WORKER": str(number)}
        return await asyncio.create_subprocess_exec(
            *_HANDOVER, "serve", "--workers", "1", env=env, cwd=self.cwd, preexec_fn=_die_with_parent
        )

    def _forward(self, signum: int) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self._stop.set()
        for worker in self._workers:
            if worker.process.returncode is None:
                worker.process.send_signal(signal.SIGTERM if signum == signal.SIGINT else signum)

    async def _restart_dead(self) -> None:
        for worker in self._workers:
            code = worker.process.returncode
            if code is None or self._stop.is_set():
                continue
            lived = time.monotonic() - worker.started
            worker.failures = 0 if lived > _MAX_PAUSE_SECONDS else worker.failures + 1
            pause = min(_MAX_PAUSE_SECONDS, 0.5 * 2 ** min(worker.failures, 6))
            self.say(f"worker {worker.number} exited with {code}; starting it again in {pause:.1f} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=pause)
            if not self._stop.is_set():
                worker.process = await self._start(worker.number)
                worker.started = time.monotonic()

    async def _wait_all(self) -> None:
        for worker in self._workers:
            try:
                await asyncio.wait_for(worker.process.wait(), timeout=30)
            except TimeoutError:
                worker.process.kill()
                await worker.process.wait()
