"""Real database outages against a private embedded PostgreSQL cluster (no proxy standing in for the fault).

F5: `pg_ctl stop -m immediate` while 20 senders push a few hundred referrals, each retried with the same
X-Request-ID until it is acknowledged. Every answer is 202 or 503 with Retry-After (never 500 or another 5xx);
after the cluster is restarted on the same port the service recovers unaided, and every acknowledged message is
stored exactly once.

F13: the data disk (a small tmpfs) fills up right after the hub has migrated, so every acceptance has to extend a
relation and PostgreSQL answers 53100 "could not extend file". Every message gets 503 with Retry-After and none is
acknowledged or stored; once the space is freed, messages are accepted again without restarting the service. The
current WAL segment still has megabytes of preallocated room, so WAL never runs out here (no PANIC); should the
postmaster have died anyway, the cluster is restarted on the same port before recovery is checked.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from service.store.embedded import EmbeddedCluster, ensure_cluster, locate_cluster
from tests.support.embedded import (
    BINDIR,
    pg_ctl,
    postmaster_alive,
    processes_under,
    remove,
    scratch_var_dir,
    stop_servers,
)
from tests.support.hub import Network, RunningHub, running_hub
from tests.support.messages import referral

pytestmark = pytest.mark.skipif(BINDIR is None, reason="no PostgreSQL binaries on this machine")
SENDERS = ("RM1", "RDE", "RGN", "RC9", "RGP", "RCX", "RGR")
RECOVERY_SECONDS = 60


# --------------------------------------------------------------------------------------------- the cluster


def _port(cluster: EmbeddedCluster) -> int:
    port = urlsplit(cluster.dsn).port
    assert port is not None
    return port


@dataclass
class Cluster:
    """One embedded cluster of `var_dir`, restartable on the same port; `close` leaves nothing running. Its files
    are where `ensure_cluster` put them: `var_dir/pg`, or, as root in a mode-700 checkout, under
    /var/lib/handover/clusters (`home` is the directory holding `pg/`)."""

    var_dir: Path
    log: list[str] = field(default_factory=list)
    handles: list[EmbeddedCluster] = field(default_factory=list)

    @property
    def current(self) -> EmbeddedCluster:
        return self.handles[-1]

    @property
    def home(self) -> Path:
        return locate_cluster(self.var_dir).parent

    @property
    def data_dir(self) -> Path:
        return self.home / "pg" / "data"

    async def start(self) -> EmbeddedCluster:
        cluster = await asyncio.to_thread(ensure_cluster, self.var_dir, log=self.log.append)
        assert cluster.data_dir == self.data_dir, "the cluster is where locate_cluster says"
        self.handles.append(cluster)
        return cluster

    async def stop_immediately(self) -> None:
        result = await asyncio.to_thread(pg_ctl, "stop", "-D", str(self.data_dir), "-m", "immediate", "-w")
        assert result.returncode == 0, result.stdout + result.stderr

    def server_log(self) -> str:
        with suppress(OSError):
            return (self.home / "pg" / "server.log").read_text(errors="replace")
        return ""

    def close(self) -> None:
        for handle in reversed(self.handles):
            with suppress(Exception):
                handle.stop()
        stop_servers(self.var_dir)
        leftovers = processes_under(self.home / "pg")
        assert not leftovers, f"PostgreSQL processes left running: {leftovers}"


@contextmanager
def private_cluster_dir() -> Iterator[Cluster]:
    path = scratch_var_dir("f5")
    cluster = Cluster(path)
    try:
        yield cluster
    finally:
        try:
            cluster.close()
        finally:
            remove(path)


@contextmanager
def tmpfs_cluster_dir(size_mb: int) -> Iterator[Cluster]:
    """A cluster whose data disk is a small tmpfs, mounted where its `pg/` will be (the var directory, or its
    directory under /var/lib/handover/clusters)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs as the data disk needs root")
    path = scratch_var_dir("f13")
    cluster = Cluster(path)
    home = cluster.home
    home.mkdir(mode=0o755, parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(home)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        remove(path)
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield cluster
    finally:
        try:
            cluster.close()
        finally:
            subprocess.run(["umount", str(home)], check=False)
            remove(path)


# --------------------------------------------------------------------------------------------- sending


@dataclass(frozen=True)
class Outgoing:
    sender: str
    bundle_identifier: str
    request_id: str
    body: bytes


@dataclass(frozen=True)
class Answer:
    status: int
    retry_after: str | None
    codes: tuple[str, ...]
    at: float


def outgoing(hub: RunningHub, sender: str) -> Outgoing:
    signed = hub.trust(sender).sign(referral(sender))
    return Outgoing(sender, signed["identifier"]["value"], str(uuid.uuid4()), json.dumps(signed).encode())


async def send(hub: RunningHub, message: Outgoing) -> Answer:
    status, body, headers = await hub.post_raw(message.body, as_ods=message.sender, request_id=message.request_id)
    codes = tuple(
        coding.get("code", "")
        for issue in body.get("issue", [])
        for coding in (issue.get("details") or {}).get("coding", [])
    )
    return Answer(status, headers.get("Retry-After"), codes, time.monotonic())


def assert_only_202_or_503(answers: list[Answer]) -> None:
    statuses = sorted({answer.status for answer in answers})
    assert set(statuses) <= {202, 409, 503}, f"never a 500 or another 5xx, only 503: {statuses}"
    for answer in answers:
        if answer.status == 503:
            assert answer.retry_after is not None and int(answer.retry_after) > 0, answer
            assert "unavailable" in answer.codes, answer
        if answer.status == 409:
            assert "duplicate-message" in answer.codes, answer


async def stored(dsn: str) -> dict[tuple[str, str], list[str]]:
    """(sender, bundle identifier) -> the request ids of every stored copy."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetch("SELECT sender_ods, bundle_identifier, request_id FROM messages")
    finally:
        await conn.close()
    found: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        found.setdefault((row["sender_ods"], row["bundle_identifier"]), []).append(str(row["request_id"]))
    return found


@asynccontextmanager
async def hub_on(network: Network, cluster: EmbeddedCluster) -> AsyncIterator[RunningHub]:
    async with running_hub(network, cluster.dsn) as hub:  # migrates the fresh database on start
        yield hub


# --------------------------------------------------------------------------------------------- F5


async def test_f5_pg_ctl_stop_immediate_under_load_gives_503_and_recovers_on_restart(network: Network) -> None:
    with private_cluster_dir() as cluster:
        first = await cluster.start()
        port = _port(first)
        async with hub_on(network, first) as hub:
            messages = [outgoing(hub, SENDERS[n % len(SENDERS)]) for n in range(300)]
            answers: dict[str, list[Answer]] = {m.request_id: [] for m in messages}
            accepted = asyncio.Event()
            queue: asyncio.Queue[Outgoing] = asyncio.Queue()
            for message in messages:
                queue.put_nowait(message)

            async def sender() -> None:
                while not queue.empty():
                    message = queue.get_nowait()
                    while True:  # the same X-Request-ID until acknowledged
                        answer = await send(hub, message)
                        answers[message.request_id].append(answer)
                        if answer.status in {202, 409}:
                            if sum(a[-1].status == 202 for a in answers.values() if a) >= 60:
                                accepted.set()
                            break
                        if answer.status != 503:
                            return  # a wrong answer: reported by the assertions below
                        await asyncio.sleep(0.05)

            async def outage() -> tuple[float, float, int]:
                await asyncio.wait_for(accepted.wait(), timeout=30)
                stopped = time.monotonic()
                await cluster.stop_immediately()
                await asyncio.sleep(1.5)  # down for a while: in-flight and following requests meet no database
                restarted = await cluster.start()
                return stopped, time.monotonic(), _port(restarted)

            senders = asyncio.gather(*(sender() for _ in range(20)))
            (stopped, restarted, new_port), _ = await asyncio.wait_for(asyncio.gather(outage(), senders), timeout=90)

            every = [answer for per_message in answers.values() for answer in per_message]
            assert_only_202_or_503(every)
            assert new_port == port, "restarted on the port the hub's pool points at"
            during = [a for a in every if stopped <= a.at <= restarted]
            assert any(a.status == 503 for a in during), "the outage was felt by requests"
            after = [a.at for a in every if a.at > restarted and a.status == 202]
            assert after, "requests succeed again after the restart"
            assert min(after) - restarted < RECOVERY_SECONDS, "recovered unaided"
            unacknowledged = [rid for rid, a in answers.items() if not a or a[-1].status not in {202, 409}]
            assert not unacknowledged, f"{len(unacknowledged)} messages never acknowledged"

        found = await stored(cluster.current.dsn)
        for message in messages:
            copies = found.get((message.sender, message.bundle_identifier), [])
            assert copies == [message.request_id], f"{message.bundle_identifier}: stored {len(copies)} times"
        assert sum(len(copies) for copies in found.values()) == len(messages), "nothing stored twice or extra"


# --------------------------------------------------------------------------------------------- F13


def fill(directory: Path) -> Path:
    """A filler file taking every free byte of directory's file system."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as handle:
        free = os.statvfs(directory).f_bavail * os.statvfs(directory).f_frsize
        if free > 0:
            with suppress(OSError):
                os.posix_fallocate(handle.fileno(), 0, free)
        handle.seek(0, os.SEEK_END)
        chunk = b"\0" * 4096
        while True:
            try:
                handle.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    assert os.statvfs(directory).f_bavail == 0
    return filler


async def probe_error(dsn: str) -> str:
    """What PostgreSQL says when asked to store something on the full disk."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS disk_probe (filler bytea)")
        await conn.execute(
            "INSERT INTO disk_probe SELECT decode(repeat('00', 8192), 'hex') FROM generate_series(1, 64)"
        )
    except asyncpg.PostgresError as exc:
        return f"{type(exc).__name__} {exc.sqlstate}: {exc}"
    finally:
        with suppress(Exception):
            await conn.close()
    return "no error"


async def test_f13_data_disk_full_gives_503_nothing_acknowledged_and_resumes_when_freed(network: Network) -> None:
    with tmpfs_cluster_dir(size_mb=96) as cluster:
        first = await cluster.start()
        async with hub_on(network, first) as hub:
            filler = fill(cluster.home)
            refused = [outgoing(hub, SENDERS[n % len(SENDERS)]) for n in range(12)]
            answers = [await send(hub, message) for message in refused]
            answers += [await send(hub, message) for message in refused]  # retried, same X-Request-ID
            assert (await probe_error(first.dsn)).startswith("DiskFullError 53100"), "the disk really is full"

            assert_only_202_or_503(answers)
            assert {a.status for a in answers} == {503}, [a.status for a in answers]
            assert not await stored(first.dsn), "nothing stored while the disk was full"

            filler.unlink()
            panicked = not postmaster_alive(cluster.data_dir)
            if panicked:  # WAL full: the postmaster gave up; a restart (same port) must be enough
                restarted = await cluster.start()
                assert _port(restarted) == _port(first)
            deadline = time.monotonic() + RECOVERY_SECONDS
            resumed = [await send(hub, message) for message in refused]
            while any(a.status != 202 for a in resumed) and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                resumed = [a if a.status == 202 else await send(hub, m) for a, m in zip(resumed, refused, strict=True)]
            assert_only_202_or_503(resumed)
            assert {a.status for a in resumed} == {202}, "accepted again once space is freed, no service restart"

            found = await stored(cluster.current.dsn)
            assert len(found) == len(refused)
            for message in refused:
                assert found[(message.sender, message.bundle_identifier)] == [message.request_id]
