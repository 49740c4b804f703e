"""Fixtures for the staff pages.

HTTP level: `ui_hub` (a hub with the development OIDC provider on, no data) and `signed_in` (clients signed in
through the real redirect flow). Browser level: `demo` (one hub per test session with the demo's scenario
played into it, served from its own thread) and `page` (a fresh headless Chromium for each test); sign in
with `tests.ui.browser.sign_in(page, demo, "governance")`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from tests.support.databases import DatabaseFactory
from tests.support.hub import Network, RunningHub, running_hub
from tests.ui.browser import Browser, browser_for
from tests.ui.demo_hub import DemoHub, demo_hub
from tests.ui.http_signin import SignedIn, sign_in


@pytest.fixture
async def ui_hub(network: Network, database: str) -> AsyncIterator[RunningHub]:
    """A hub with HANDOVER_DEV_IDP on and no data."""
    async with running_hub(network, database, dev_idp=True) as running:
        yield running


@pytest.fixture
async def signed_in(ui_hub: RunningHub) -> AsyncIterator[Callable[[str], Awaitable[SignedIn]]]:
    """`await signed_in("amara.okafor")`: a client signed in as that development user (closed afterwards)."""
    clients: list[SignedIn] = []

    async def open_as(subject: str) -> SignedIn:
        clients.append(await sign_in(ui_hub.base_url, subject))
        return clients[-1]

    yield open_as
    for opened in clients:
        await opened.client.close()


@pytest.fixture(scope="session")
async def demo_database(databases: DatabaseFactory) -> AsyncIterator[str]:
    dsn = await databases.create()
    try:
        yield dsn
    finally:
        await databases.drop(dsn)


@pytest.fixture(scope="session")
def demo(network: Network, demo_database: str) -> Iterator[DemoHub]:
    """The demo's scenario played into a hub with the development provider on (shared by the session)."""
    with demo_hub(network, demo_database) as hub:
        yield hub


@pytest.fixture
def page(demo: DemoHub) -> Iterator[Browser]:
    """A fresh headless Chromium (no cookies) pointed at `demo`."""
    with browser_for(demo) as browser:
        yield browser
