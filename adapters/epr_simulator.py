"""A trust EPR's push endpoint, for the demo: receives what the hub pushes, checks each message's signature
against the registry, hands each Bundle.identifier to its "business layer" once (409 for a repeat)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from service.errors import HandoverError
from service.identity.registry import Registry
from service.identity.signing import verify_bundle_signature


@dataclass
class EprSimulator:
    ods: str
    registry: Registry
    received: list[dict[str, Any]] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait_for(self, count: int, *, within_seconds: float) -> bool:
        """Whether `count` messages have arrived within `within_seconds`."""
        async with self._arrived:
            try:
                await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.received) >= count), within_seconds)
            except TimeoutError:
                return False
        return True

    async def start(self, port: int) -> None:
        app = web.Application()
        app.router.add_post("/$process-message", self._process_message)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _process_message(self, request: web.Request) -> web.Response:
        bundle = json.loads(await request.read())
        try:
            verify_bundle_signature(bundle, lambda kid: self.registry.key(kid) or self.registry.hub_key(kid))
        except HandoverError:
            return web.json_response({"error": "signature"}, status=400)
        identifier = bundle["identifier"]["value"]
        if any(seen["identifier"]["value"] == identifier for seen in self.received):
            return web.json_response({"duplicate": identifier}, status=409)
        async with self._arrived:
            self.received.append(bundle)
            self._arrived.notify_all()
        return web.json_response({"accepted": identifier}, status=202)
