"""A hub with the development OIDC provider on and the demo's East Anglia scenario played into it, running in a
thread of its own (its own event loop), so that synchronous browser tests can drive it while it serves."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg

from adapters.demo import play_scenario
from tests.support.hub import EVENT_SYSTEM, Network, running_hub


@dataclass
class DemoHub:
    """The running hub's URL and database, and the demo's episodes by referring trust (oldest first)."""

    base_url: str
    dsn: str
    episodes: dict[str, list[UUID]] = field(default_factory=dict)
    states: dict[UUID, str] = field(default_factory=dict)

    def episode_of(self, referrer: str, state: str | None = None) -> UUID:
        """The first episode `referrer` referred (in `state`, if given)."""
        return next(e for e in self.episodes[referrer] if state is None or self.states[e] == state)


async def _episodes(dsn: str) -> tuple[dict[str, list[UUID]], dict[UUID, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT id, referrer_ods, state FROM episodes ORDER BY opened_at")
    finally:
        await conn.close()
    by_referrer: dict[str, list[UUID]] = {}
    for row in rows:
        by_referrer.setdefault(row["referrer_ods"], []).append(row["id"])
    return by_referrer, {row["id"]: row["state"] for row in rows}


@contextlib.contextmanager
def demo_hub(network: Network, dsn: str, *, play: bool = True, **overrides: Any) -> Iterator[DemoHub]:
    """Start the hub in a thread, play the scenario (unless `play` is False), yield; stop it on exit. Fails if
    the scenario fails. `overrides` are Settings fields (e.g. ui_idle_minutes)."""
    ready, stop = threading.Event(), threading.Event()
    found: list[DemoHub] = []
    failure: list[BaseException] = []

    async def serve() -> None:
        async with running_hub(network, dsn, dev_idp=True, checkpoint_seconds=0.5, **overrides) as hub:
            if play:
                report = await play_scenario(hub.base_url, network.registry, network.keys_dir, EVENT_SYSTEM)
                assert report.passed, [s for s in report.steps if not s.ok]
            episodes, states = await _episodes(dsn)
            found.append(DemoHub(hub.base_url, dsn, episodes, states))
            await asyncio.sleep(1.2)  # a checkpoint covering the whole scenario is signed
            ready.set()
            await asyncio.to_thread(stop.wait)

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as err:  # noqa: BLE001 - crosses the thread boundary; re-raised in the test thread
            failure.append(err)
            ready.set()

    thread = threading.Thread(target=run, name="demo-hub", daemon=True)
    thread.start()
    ready.wait(timeout=240)
    try:
        if failure:
            raise failure[0]
        assert found, "the demo hub did not start in time"
        yield found[0]
    finally:
        stop.set()
        thread.join(timeout=30)
