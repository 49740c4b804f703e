"""PostgreSQL LISTEN/NOTIFY: how hub processes sharing one database tell each other that something changed.

`announce` sends a notification inside the caller's transaction (delivered at COMMIT, never if it rolls back);
`Listener` keeps one dedicated connection listening on a channel, reconnecting after it is lost, and calls
`on_listening` each time it starts listening (the first time too): notifications sent before that are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg

from service.background import run_forever
from service.store import db
from service.store.db import CONNECTION_ERRORS

log = logging.getLogger("handover.store.notifications")
RECONNECT_SECONDS = 2.0


async def announce(conn: asyncpg.Connection, channel: str, payload: str) -> None:
    """NOTIFY `channel` with `payload`, delivered to every listener when the transaction commits."""
    await conn.execute("SELECT pg_notify($1, $2)", channel, payload)


class Listener:
    """Listens on `channel` until stopped; `on_message(payload)` runs for each notification."""

    def __init__(
        self,
        dsn: str,
        channel: str,
        on_message: Callable[[str], Coroutine[Any, Any, None]],
        *,
        on_listening: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self._dsn, self._channel = dsn, channel
        self._on_message, self._on_listening = on_message, on_listening
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self.listening = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"listen-{self._channel}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._pending):
            task.cancel()

    async def _run(self) -> None:
        """Listen, and listen again after RECONNECT_SECONDS whenever the connection is lost or anything fails
        (connecting, `on_listening`): logged and counted, never the end of listening (service/background.py)."""
        await run_forever(f"listen-{self._channel}", self._listen_once, interval=RECONNECT_SECONDS)

    async def _listen_once(self) -> None:
        try:
            await self._listen_until_lost()
        finally:
            self.listening.clear()

    async def _listen_until_lost(self) -> None:
        lost = asyncio.Event()
        conn = await db.connect(self._dsn)
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(self._channel, self._deliver)
            if self._on_listening is not None:
                await self._on_listening()
            self.listening.set()
            await lost.wait()
            log.warning("notification connection lost; reconnecting", extra={"code": self._channel})
        finally:
            with contextlib.suppress(*CONNECTION_ERRORS):
                await asyncio.wait_for(conn.close(), timeout=2)

    def _deliver(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        task = asyncio.get_running_loop().create_task(self._on_message(str(payload)))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
