"""The sender outlives any answer from the hub's side (issue 26, item 8): a gateway's HTML error page, a body that
is not JSON, 502 and 429 are counted, logged and retried with a growing pause (bounded), and the message is sent
once the hub answers again. Before, a non-JSON answer raised out of `_send` and ended the send loop for good."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from adapters.hl7.connector import send_pause
from tests.hl7 import samples
from tests.hl7.conftest import StartConnector
from tests.hl7.mllp import ack_code, send, until
from tests.support.hub import RunningHub


@dataclass
class Gateway:
    """A reverse proxy in front of the hub that first gives `faults` (status, content type, body), one per request."""

    hub: RunningHub
    faults: list[tuple[int, str, bytes]]
    requests: int = 0
    url: str = ""
    _runner: web.AppRunner | None = field(default=None, repr=False)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.faults:
            status, content_type, body = self.faults.pop(0)
            return web.Response(status=status, body=body, content_type=content_type)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in {"host", "content-length"}}
        async with self.hub.session.request(
            request.method, f"{self.hub.base_url}{request.path_qs}", data=await request.read(), headers=headers
        ) as resp:
            return web.Response(status=resp.status, body=await resp.read(), content_type=resp.content_type)


@asynccontextmanager
async def gateway(hub: RunningHub, faults: list[tuple[int, str, bytes]]) -> AsyncIterator[Gateway]:
    proxy = Gateway(hub, faults)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    proxy.url = f"http://127.0.0.1:{port}"
    try:
        yield proxy
    finally:
        await runner.cleanup()


async def test_error_pages_and_unreadable_answers_are_retried_until_the_hub_takes_the_message(
    hub: RunningHub, start_connector: StartConnector
) -> None:
    faults = [
        (502, "text/html", b"<html><body>Bad Gateway</body></html>"),  # not JSON
        (429, "application/json", b"{}"),
        (503, "application/json", b'{"resourceType": "OperationOutcome"}'),
    ]
    async with gateway(hub, faults) as proxy, start_connector("RM1", base_url=proxy.url) as (connector, port):
        ack = await send(port, samples.referral(samples.nhs_number()))
        assert ack_code(ack) == "AA", str(ack)
        assert proxy.requests == 4  # three faults, then the hub; nothing sent twice once the hub took it
        failures = {
            reason: connector.metrics.value("handover_hl7_hub_send_failures_total", reason=reason)
            for reason in ("unreadable", "busy", "server-error")
        }
        assert failures == {"unreadable": 1, "busy": 1, "server-error": 1}, failures

        async def still_sending() -> bool:
            return not any(task.done() for task in connector._tasks)

        await until(still_sending)
    assert len(await hub.trust("RGT").inbox()) == 1


def test_the_pause_between_attempts_doubles_from_the_retry_interval_and_is_bounded() -> None:
    assert [send_pause(n, 2.0) for n in range(9)] == [2, 2, 4, 8, 16, 32, 60, 60, 60]
