"""Faults around the acceptance transaction, with our TCP proxy in front of PostgreSQL.

F1: `handover serve` is killed (SIGKILL) after its COMMIT reached the database but before it could answer:
the retry with the same X-Request-ID gets the original receipt, and there is one message. F2: killed before
the COMMIT reached the database: nothing was stored, and the retry is accepted once. F6: the database
connection is cut right after COMMIT is sent: 503, and the retry gets the original receipt. F5: the database
vanishes under load (every connection reset, new ones refused; the proxy's stand-in for `pg_ctl stop -m
immediate`): in-flight requests get 503 with Retry-After, never 500, and the service recovers unaided.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg

from adapters.trust_client import TrustClient
from service.identity.signing import sign_bundle
from service.receipts import receipt_parameters
from tests.delivery.test_relay_crash import via
from tests.support.faultproxy import Action, FaultProxy
from tests.support.hub import ROOT, Network, free_port, running_hub
from tests.support.messages import referral
from tests.support.processes import HANDOVER, wait_healthy


@asynccontextmanager
async def database_proxy(dsn: str) -> AsyncIterator[FaultProxy]:
    parts = urlsplit(dsn)
    async with FaultProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        yield proxy


def serve(network: Network, dsn: str, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOVER_")}
    env.update(
        HANDOVER_LISTEN=f"127.0.0.1:{port}",
        HANDOVER_NETWORK=str(network.network_path),
        HANDOVER_KEYS_DIR=str(network.keys_dir),
        HANDOVER_DATABASE_URL=dsn,
    )
    return subprocess.Popen([HANDOVER, "serve"], env=env, cwd=ROOT, stderr=subprocess.DEVNULL)


async def post(session: aiohttp.ClientSession, base_url: str, network: Network, body: bytes, request_id: str) -> int:
    """POST as RM1 with a fresh bearer token, as a trust's client would."""
    token = TrustClient(session, base_url, "RM1", network.private_key("RM1"), network.registry).bearer_token()
    headers = {"Content-Type": "application/fhir+json", "X-Request-ID": request_id, "Authorization": f"Bearer {token}"}
    async with session.post(f"{base_url}/fhir/$process-message", data=body, headers=headers) as resp:
        await resp.read()
        return resp.status


async def counts(dsn: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return (
            await conn.fetchval("SELECT count(*) FROM messages"),
            await conn.fetchval("SELECT count(*) FROM idempotency_keys WHERE receipt IS NOT NULL"),
        )
    finally:
        await conn.close()


async def killed_mid_acceptance(network: Network, database: str, action: Action) -> tuple[bytes, str]:
    """Start `handover serve` behind the proxy, send a referral, SIGKILL the service when the acceptance's COMMIT
    meets `action`; returns the body and X-Request-ID sent."""
    body, request_id, port = json.dumps(network_sign(network)).encode(), str(uuid.uuid4()), free_port()
    async with database_proxy(database) as proxy:
        proc = serve(network, via(database, proxy.port), port)
        try:
            await asyncio.to_thread(wait_healthy, port, proc)
            proxy.arm(b"INSERT INTO messages", b"COMMIT", action)
            async with aiohttp.ClientSession() as session:
                sending = asyncio.create_task(post(session, f"http://127.0.0.1:{port}", network, body, request_id))
                await asyncio.wait_for(proxy.fired.wait(), timeout=10)
                await asyncio.sleep(0.3)  # the database has the COMMIT (F1) or never will (F2)
                proc.send_signal(signal.SIGKILL)
                await asyncio.to_thread(proc.wait, 10)
                try:
                    status: int | None = await sending
                except aiohttp.ClientError:
                    status = None
            assert status is None, "the client never got an answer"
        finally:
            if proc.poll() is None:
                proc.kill()
            proxy.reset()
    return body, request_id


def network_sign(network: Network) -> dict[str, Any]:
    return sign_bundle(referral(), network.private_key("RM1"), "RM1")


async def test_f1_killed_after_commit_before_the_answer_retry_gets_the_original_receipt(
    database: str, network: Network
) -> None:
    body, request_id = await killed_mid_acceptance(network, database, Action.HOLD_REPLIES)
    assert await counts(database) == (1, 1), "committed before the kill"
    conn = await asyncpg.connect(database)
    try:
        stored = bytes(await conn.fetchval("SELECT receipt FROM idempotency_keys"))
        message_id = await conn.fetchval("SELECT id FROM messages")
    finally:
        await conn.close()
    async with running_hub(network, database) as hub:
        status, receipt, _ = await hub.post_raw(body, request_id=request_id)
    assert status == 202
    assert receipt == json.loads(stored), "the original receipt"
    assert receipt_parameters(receipt)["message-id"] == str(message_id)
    assert await counts(database) == (1, 1), "one message"


async def test_f2_killed_before_commit_stores_nothing_and_the_retry_is_accepted_once(
    database: str, network: Network
) -> None:
    body, request_id = await killed_mid_acceptance(network, database, Action.HOLD_REQUEST)
    assert await counts(database) == (0, 0), "no rows"
    async with running_hub(network, database) as hub:
        first = await hub.post_raw(body, request_id=request_id)
        again = await hub.post_raw(body, request_id=request_id)
    assert first[0] == again[0] == 202 and first[1] == again[1]
    assert await counts(database) == (1, 1)


async def test_f6_connection_cut_right_after_commit_is_503_and_the_retry_gets_the_receipt(
    database: str, network: Network
) -> None:
    async with database_proxy(database) as proxy, running_hub(network, via(database, proxy.port)) as hub:
        body, request_id = json.dumps(hub.trust("RM1").sign(referral())).encode(), str(uuid.uuid4())
        proxy.arm(b"INSERT INTO messages", b"COMMIT", Action.RESET)
        status, outcome, headers = await hub.post_raw(body, request_id=request_id)
        assert proxy.fired.is_set()
        assert status == 503 and headers["Retry-After"].isdigit(), outcome
        status, receipt, _ = await hub.post_raw(body, request_id=request_id)
        assert status == 202
    conn = await asyncpg.connect(database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM messages") == 1
        assert str(await conn.fetchval("SELECT id FROM messages")) == receipt_parameters(receipt)["message-id"]
    finally:
        await conn.close()


async def test_f5_database_gone_under_load_gives_503_never_500_and_recovers_unaided(
    database: str, network: Network
) -> None:
    async with database_proxy(database) as proxy, running_hub(network, via(database, proxy.port)) as hub:
        bodies = [(json.dumps(hub.trust("RM1").sign(referral())).encode(), str(uuid.uuid4())) for _ in range(120)]
        statuses: dict[str, int] = {}

        async def sender(share: list[tuple[bytes, str]]) -> None:
            for body, request_id in share:
                statuses[request_id] = (await hub.post_raw(body, request_id=request_id))[0]

        async def outage() -> float:
            await asyncio.sleep(0.3)
            proxy.reset(refuse=True)  # every connection dies, no new one gets through
            await asyncio.sleep(1.0)
            proxy.heal()
            return time.monotonic()

        healed, _ = await asyncio.gather(outage(), asyncio.gather(*(sender(bodies[n::12]) for n in range(12))))
        assert set(statuses.values()) <= {202, 503}, f"never a 5xx but 503: {sorted(set(statuses.values()))}"
        assert 503 in statuses.values(), "the outage was felt"
        retried = time.monotonic()
        for body, request_id in bodies:
            if statuses[request_id] == 503:
                statuses[request_id] = (await hub.post_raw(body, request_id=request_id))[0]
        assert set(statuses.values()) == {202}
        assert retried - healed < 60
    assert await counts(database) == (120, 120), "every 202 is a committed message, each once"


async def test_f16_database_hang_with_the_pool_exhausted_is_503_within_bounded_time(
    database: str, network: Network
) -> None:
    async with database_proxy(database) as proxy, running_hub(network, via(database, proxy.port), db_pool_max=2) as hub:
        bodies = [(json.dumps(hub.trust("RM1").sign(referral())).encode(), str(uuid.uuid4())) for _ in range(6)]
        assert (await hub.post_raw(bodies[0][0], request_id=bodies[0][1]))[0] == 202
        proxy.hang()

        async def timed(body: bytes, request_id: str) -> tuple[int, dict[str, str], float]:
            began = time.monotonic()
            status, _, headers = await hub.post_raw(body, request_id=request_id)
            return status, headers, time.monotonic() - began

        tasks = [asyncio.create_task(timed(body, rid)) for body, rid in bodies[1:]]
        done, _ = await asyncio.wait(tasks, timeout=5.5)  # db.ACQUIRE_TIMEOUT_SECONDS is 5
        answered = [task.result() for task in done]
        assert len(answered) >= 3, "requests waiting for a connection are answered, not queued forever"
        assert all(status == 503 and "Retry-After" in headers and took < 7 for status, headers, took in answered)
        proxy.reset()
        proxy.heal()
        results = await asyncio.gather(*tasks)
        assert {status for status, _, _ in results} <= {202, 503}
        for body, request_id in bodies[1:]:
            assert (await hub.post_raw(body, request_id=request_id))[0] == 202, "recovers without a restart"
