"""T4, the backup-and-restore drill of docs/operations.md, run for real.

pg_dump a working hub's database, keep working (a trust keeps the newer checkpoint), pg_restore the backup into a
new database and start the hub on it. `handover audit verify` given the trust's checkpoint reports the rollback
(the log is shorter than a witnessed checkpoint), and the hub refuses to sign a checkpoint that contradicts one it
already published: it knows from its record outside the database, or, with that record lost, from the trust's
checkpoint put in the record directory; and still after the restored log has grown past the witnessed size.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

from service.auditlog.published import PUBLISHED
from service.store.embedded import find_postgres_bindir
from tests.support.databases import DatabaseFactory, with_database
from tests.support.hub import ROOT, Network, RunningHub, running_hub
from tests.support.messages import referral

BINDIR = find_postgres_bindir()
pytestmark = pytest.mark.skipif(BINDIR is None, reason="no PostgreSQL client binaries (pg_dump) on this machine")
REFUSAL = "checkpoint signing stopped"


async def send(hub: RunningHub, count: int) -> None:
    for _ in range(count):
        client = hub.trust("RM1")
        assert (await client.send(client.sign(referral("RM1", "RGT")))).accepted


async def fetch(dsn: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def log_size(dsn: str) -> int:
    return int((await fetch(dsn, "SELECT coalesce(max(seq) + 1, 0) AS n FROM audit_events"))[0]["n"])


async def latest_checkpoint_size(dsn: str) -> int:
    rows = await fetch(dsn, "SELECT coalesce(max(tree_size), -1) AS n FROM audit_checkpoints")
    return int(rows[0]["n"])


async def checkpointed(dsn: str, *, within: float = 15.0) -> int:
    """Wait until the whole log is covered by a checkpoint; returns its size."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        size = await log_size(dsn)
        if await latest_checkpoint_size(dsn) == size:
            return size
        await asyncio.sleep(0.1)
    raise AssertionError("the log was not checkpointed")


async def refused(caplog: pytest.LogCaptureFixture, *, within: float = 15.0) -> str:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        for record in caplog.records:
            if REFUSAL in record.getMessage() and record.exc_info is not None:
                return str(record.exc_info[1])
        await asyncio.sleep(0.1)
    raise AssertionError("the hub did not refuse to sign")


def pg(tool: str, *args: str) -> None:
    assert BINDIR is not None
    subprocess.run([str(BINDIR / tool), *args], check=True, capture_output=True, timeout=120)


async def audit_verify(dsn: str, network: Network, *checkpoints: Path) -> tuple[int, str]:
    options = [part for path in checkpoints for part in ("--checkpoint", str(path))]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "service.cli", "audit", "verify", "--database-url", dsn, "--network", str(network.network_path)),
        *options,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )
    output, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    return int(proc.returncode or 0), output.decode()


async def test_t4_restore_drill_rollback_is_reported_and_never_signed_over(
    databases: DatabaseFactory, database: str, network: Network, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    record = tmp_path / "published-checkpoints"
    backup, witnessed = tmp_path / "handover.dump", tmp_path / "rm1-kept-checkpoint.note"
    fast = {"checkpoint_seconds": 0.1, "checkpoint_record_dir": record}

    # 1. A working hub; back up its database with pg_dump; keep working; a trust keeps the newer checkpoint.
    async with running_hub(network, database, **fast) as hub:
        await send(hub, 3)
        await checkpointed(database)
        pg("pg_dump", "--format=custom", "--file", str(backup), "--dbname", database)
        backed_up = await log_size(database)
        await send(hub, 3)
        published = await checkpointed(database)
        async with hub.session.get(f"{hub.base_url}/audit/checkpoint") as resp:
            witnessed.write_text(await resp.text())
    assert published > backed_up
    assert (record / PUBLISHED).read_text() == witnessed.read_text(), "the hub recorded what it published"

    # 2. Restore the backup into a new database.
    restored = with_database(databases.server_dsn, f"handover_restore_{uuid.uuid4().hex[:12]}")
    admin = await asyncpg.connect(with_database(databases.server_dsn, "postgres"))
    await admin.execute(f'CREATE DATABASE "{restored.rsplit("/", 1)[1]}" TEMPLATE template0')
    await admin.close()
    try:
        pg("pg_restore", "--no-owner", "--exit-on-error", "--dbname", restored, str(backup))
        assert await log_size(restored) == backed_up

        # 3. The offline verifier, given the trust's checkpoint, says plainly that the log was rolled back.
        status, output = await audit_verify(restored, network, witnessed)
        assert status == 1, output
        assert "log-shorter-than-checkpoint" in output and f"tree size {published}" in output, output
        assert f"ROLLED BACK: the log has {backed_up} entries but a signed checkpoint covers {published}" in output

        # 4. The hub starts on the restored database and accepts messages, but will not sign over the rollback.
        caplog.set_level(logging.CRITICAL, logger="handover.audit.checkpoints")
        async with running_hub(network, restored, **fast) as hub:
            await send(hub, 1)
            reason = await refused(caplog)
            assert f"fewer than the {published} of a checkpoint already published" in reason
            assert "restored from an older backup" in reason
            await send(hub, published - backed_up + 1)  # the log grows past the published size: a fork now
            assert await latest_checkpoint_size(restored) < backed_up + 1, "nothing signed over the restore"

        # 5. With the record lost, the trust's kept checkpoint in the record directory is enough to refuse the fork.
        caplog.clear()
        fresh = tmp_path / "fresh-record"
        fresh.mkdir()
        (fresh / witnessed.name).write_text(witnessed.read_text())
        async with running_hub(network, restored, checkpoint_seconds=0.1, checkpoint_record_dir=fresh):
            assert await log_size(restored) > published
            reason = await refused(caplog)
            assert f"first {published} entries are not those of the checkpoint already published" in reason
        assert await latest_checkpoint_size(restored) < backed_up + 1
    finally:
        admin = await asyncpg.connect(with_database(databases.server_dsn, "postgres"))
        await admin.execute(f'DROP DATABASE IF EXISTS "{restored.rsplit("/", 1)[1]}" WITH (FORCE)')
        await admin.close()


def test_the_record_is_kept_by_default_with_an_external_database_only() -> None:
    from service.config import Settings

    external = {"HANDOVER_DATABASE_URL": "postgresql://db/handover", "HANDOVER_VAR_DIR": "/srv/handover"}
    assert Settings.from_env(external).checkpoint_record_dir == Path("/srv/handover/published-checkpoints")
    assert Settings.from_env({}).checkpoint_record_dir is None, "the embedded development cluster: no record"
    assert Settings.from_env({"HANDOVER_CHECKPOINT_RECORD_DIR": "/mnt/other"}).checkpoint_record_dir == Path(
        "/mnt/other"
    )
    assert Settings.from_env({**external, "HANDOVER_CHECKPOINT_RECORD_DIR": "off"}).checkpoint_record_dir is None
