"""The centre (RGT) as a real push recipient: a copy of the network whose registry sends RGT's messages to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from adapters.recipient import Recipient
from tests.support.hub import Network


@asynccontextmanager
async def centre_with_push(network: Network, directory: Path) -> AsyncIterator[tuple[Network, Recipient]]:
    recipient = Recipient("RGT", network.registry)

    def push_to_recipient(doc: dict[str, Any]) -> None:
        doc["participants"]["RGT"]["endpoint"] = recipient.endpoint

    edited = network.edited(directory / "network", push_to_recipient)
    recipient.registry = edited.registry
    async with recipient:
        yield edited, recipient
