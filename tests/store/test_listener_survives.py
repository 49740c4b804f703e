"""A LISTEN connection (registry sync between hub processes) survives any fault in starting to listen (issue 26
item 8): only connection and PostgreSQL errors were caught, so one other exception (here from `on_listening`,
the registry reload) ended listening silently, and later registry reloads were never heard."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from service.background import FAULTS
from service.store import notifications
from service.store.notifications import Listener, announce
from tests.delivery.delivery_fixtures import eventually


async def test_a_fault_when_starting_to_listen_is_retried_and_notifications_are_heard(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notifications, "RECONNECT_SECONDS", 0.01)
    heard: list[str] = []
    starts: list[int] = []

    async def on_message(payload: str) -> None:
        heard.append(payload)

    async def on_listening() -> None:
        starts.append(1)
        if len(starts) == 1:
            raise ValueError("an unforeseen fault reloading the registry")

    before = FAULTS.counts.get("listen-test_channel", 0)
    listener = Listener(database, "test_channel", on_message, on_listening=on_listening)
    listener.start()
    try:
        await asyncio.wait_for(listener.listening.wait(), 10)
        conn = await asyncpg.connect(database)
        try:
            async with conn.transaction():
                await announce(conn, "test_channel", "reloaded")
        finally:
            await conn.close()

        async def was_heard() -> bool:
            return heard == ["reloaded"]

        await eventually(was_heard, within=10, what="the notification")
    finally:
        await listener.stop()
    assert len(starts) == 2
    assert FAULTS.counts["listen-test_channel"] == before + 1
