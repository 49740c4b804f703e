"""Upgrades without downtime (issue 27, item 4): the hub of the release before the newest migration serves on a
database while this release's hub starts beside it and migrates that database; the older hub goes on receipting
throughout, because a migration is additive for one release (docs/operations.md, "Upgrades"). The older release
is this repository's own history: the newest commit whose migrations are a strict subset of this release's, each
unchanged (`release_before`), extracted with `git archive` and run from its own directory with the same
virtualenv."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from service.auditlog.verify_cli import verify_database
from service.crypto.kek import create_kek_file
from service.store.db import bundled_migrations
from tests.ha.hubs import hub_env, start_hub
from tests.ha.traffic import Traffic, wait_until
from tests.support.databases import with_database
from tests.support.hub import ROOT, Network, free_port


def git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, timeout=60, check=False)


MIGRATIONS = "service/store/migrations"


def migration_blobs(commit: str) -> dict[str, str]:
    """{migration file name: blob id} at `commit`."""
    listing = git("ls-tree", commit, f"{MIGRATIONS}/").stdout.decode().splitlines()
    return {line.rpartition("/")[2]: line.split()[2] for line in listing if line.endswith(".sql")}


def release_before(head: str = "HEAD") -> str | None:
    """The newest commit in `head`'s history whose migrations are this release's first few, byte for byte, but not
    all: a release this one upgrades. (The parent of the commit that added the newest migration is not always
    one: a migration not yet released may have been edited after, on a branch merged later.)"""
    ours = migration_blobs(head)
    touching = git("rev-list", "--full-history", head, "--", MIGRATIONS).stdout.decode().split()
    for commit in touching:
        parents = git("rev-list", "--parents", "-n1", commit).stdout.decode().split()
        for candidate in parents:  # the commit itself, then its parents
            theirs = migration_blobs(candidate)
            if (
                theirs
                and len(theirs) < len(ours)
                and [ours[n] for n in sorted(ours)[: len(theirs)]] == [theirs[n] for n in sorted(theirs)]
            ):
                return candidate
    return None


def previous_release(directory: Path) -> tuple[str, int]:
    """Extract the tree of the newest earlier release (`release_before`) into `directory`; returns that commit
    and the newest migration version it knows."""
    parent = release_before()
    if not parent:
        pytest.skip("this checkout has no earlier commit with fewer migrations (a shallow or exported copy)")
    archive = git("archive", "--format=tar", parent, "service", "adapters", "fhir_profiles")
    assert archive.returncode == 0, archive.stderr.decode()
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(directory, filter="data")
    known = sorted(int(p.name[:4]) for p in (directory / "service/store/migrations").glob("[0-9]*.sql"))
    return parent, known[-1]


async def fresh_database(server: str) -> AsyncIterator[str]:
    name = f"handover_upgrade_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(with_database(server, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(server, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def empty_database(pg_server: str) -> AsyncIterator[str]:
    async for dsn in fresh_database(pg_server):
        yield dsn


async def schema_version(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT max(version) FROM schema_migrations"))
    finally:
        await conn.close()


async def test_previous_release_keeps_serving_while_this_release_migrates_beside_it(
    network: Network, empty_database: str, tmp_path: Path
) -> None:
    old_tree = tmp_path / "previous-release"
    commit, old_newest = previous_release(old_tree)
    assert old_newest < bundled_migrations()[-1].version
    kek = tmp_path / "kek.key"
    create_kek_file(kek)
    settings = {"HANDOVER_CHECKPOINT_SECONDS": "0.5", "HANDOVER_INTAKE_DATABASE_TIMEOUT_SECONDS": "5"}
    old_env = hub_env(network, empty_database, free_port(), kek, **settings) | {"PYTHONPATH": str(old_tree)}
    old_serve = [sys.executable, "-m", "service.cli", "serve", "--workers", "1"]
    old = start_hub(old_env, tmp_path / "logs", command=old_serve, cwd=old_tree)
    new = None
    try:
        await asyncio.to_thread(old.wait_ready)
        assert await schema_version(empty_database) == old_newest, f"{commit[:12]} migrated to its own schema"

        traffic = Traffic(network, [old.base_url], clients=4, max_pause=0.05)
        enough = asyncio.Event()
        sending = asyncio.create_task(traffic.send_all(traffic.messages(1500), until=enough))
        await wait_until(lambda: traffic.receipted >= 20, "the older hub receipts", 60)
        new = start_hub(hub_env(network, empty_database, free_port(), kek, **settings), tmp_path / "logs")
        await asyncio.to_thread(new.wait_ready)
        migrated = time.monotonic()
        assert await schema_version(empty_database) == bundled_migrations()[-1].version, "this release migrated"
        await wait_until(lambda: traffic.count(202, after=migrated) >= 20, "the older hub on the new schema", 60)
        enough.set()
        messages = await sending
        assert [m.status for m in messages] == [202] * len(messages), "the older hub never stopped receipting"
        assert {a.status for a in traffic.answers} == {202}

        beside = Traffic(network, [new.base_url, old.base_url], clients=2)
        more = beside.messages(6)
        await beside.send_all(more)
        assert [m.status for m in more] == [202] * 6
    finally:
        await asyncio.to_thread(old.stop)
        if new is not None:
            await asyncio.to_thread(new.stop)
    assert "Traceback" not in "\n".join(old.log_lines())
    receipts = [(m.identifier, m.receipt) for m in messages + more]
    report = await verify_database(empty_database, network.registry, [], receipts, workers=0)
    assert report.ok, report.divergences
