"""A PostgreSQL server for the test session, and one fresh database per test cloned from a migrated template.

The server is HANDOVER_TEST_DATABASE_URL when set, else the embedded cluster under var/test (started once,
reused by later runs, stopped at the end of the session if this session started it). As root in a mode-700
checkout that cluster lives under /var/lib/handover/clusters instead; it is then removed at the end of the
session, so a test run leaves nothing outside the checkout.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from service.store import db
from service.store.embedded import EmbeddedCluster, ensure_cluster
from tests.support.embedded import discard

ROOT = Path(__file__).resolve().parents[2]
SESSION_VAR = ROOT / "var" / "test"


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def start_server() -> tuple[str, EmbeddedCluster | None]:
    url = os.environ.get("HANDOVER_TEST_DATABASE_URL")
    if url:
        return url, None
    cluster = ensure_cluster(SESSION_VAR, log=lambda line: None)
    return cluster.dsn, cluster


def stop_server(cluster: EmbeddedCluster | None) -> None:
    """The end of the session: stop the cluster if this session started it, and remove it if it lives outside
    the checkout."""
    if cluster is None or not cluster.started_here:
        return
    cluster.stop()
    if not cluster.data_dir.is_relative_to(SESSION_VAR.resolve()):
        discard(SESSION_VAR)


class DatabaseFactory:
    """Creates migrated databases quickly: `CREATE DATABASE … TEMPLATE` of one migrated once per session."""

    def __init__(self, server_dsn: str) -> None:
        self.server_dsn = server_dsn
        self.template = f"handover_tmpl_{uuid.uuid4().hex[:12]}"
        self._created: list[str] = []

    async def prepare(self) -> None:
        await self._admin(f'CREATE DATABASE "{self.template}"')
        await db.migrate(with_database(self.server_dsn, self.template))

    async def create(self) -> str:
        name = f"handover_t_{uuid.uuid4().hex[:16]}"
        await self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self._created.append(name)
        return with_database(self.server_dsn, name)

    async def drop(self, dsn: str) -> None:
        name = urlsplit(dsn).path.lstrip("/")
        await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def close(self) -> None:
        await self._admin(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(with_database(self.server_dsn, "postgres"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()
