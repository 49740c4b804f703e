"""Fixtures for the staff pages: a hub with the development OIDC provider on (`ui_hub`), and signed-in HTTP
clients (`signed_in`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.support.hub import Network, RunningHub, running_hub
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
