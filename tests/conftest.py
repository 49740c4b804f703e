"""Session-wide fixtures: a PostgreSQL server, a fresh database per test, the network's keys, a running hub."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.databases import DatabaseFactory, start_server, stop_server
from tests.support.embedded import leftovers
from tests.support.hub import Network, RunningHub, running_hub

# The hazard log's tests must exist, run and not be skipped (docs/safety/hazards.yaml); pytester tests that check.
pytest_plugins = ("tests.support.hazards_plugin", "pytester")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Issue 26 item 2: no test leaves an embedded cluster it made running or on disk, in the checkout's var/ or
    under /var/lib/handover/clusters. Any that is fails the run, named."""
    left = leftovers()
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            for line in ["embedded clusters left behind by the tests:", *left]:
                reporter.write_line(line, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    dsn, cluster = start_server()
    try:
        yield dsn
    finally:
        stop_server(cluster)


@pytest.fixture(scope="session")
async def databases(pg_server: str) -> AsyncIterator[DatabaseFactory]:
    factory = DatabaseFactory(pg_server)
    await factory.prepare()
    try:
        yield factory
    finally:
        await factory.close()


@pytest.fixture
async def database(databases: DatabaseFactory) -> AsyncIterator[str]:
    """The DSN of a migrated database of this test's own."""
    dsn = await databases.create()
    try:
        yield dsn
    finally:
        await databases.drop(dsn)


@pytest.fixture(scope="session")
def network(tmp_path_factory: pytest.TempPathFactory) -> Network:
    return Network.create(Path(tmp_path_factory.mktemp("network")))


@pytest.fixture
async def hub(network: Network, database: str) -> AsyncIterator[RunningHub]:
    async with running_hub(network, database) as running:
        yield running
