"""Several hub processes on one PostgreSQL (issue 12: scale-out, proven): three `handover serve` processes on
three ports, sixteen trust clients spread over them, one process SIGKILLed mid-run and started again.

Afterwards: every message a client sent was receipted (a client retries on another process with the same
X-Request-ID, as a real client would), every receipted message reached the centre's business layer exactly
once, the audit log is dense and verifies, no checkpoint size has two roots, and no overdue answer was
alerted twice although three safety nets ran at once. Also: `--workers 2` serves one port with two processes,
and an ops registry reload in one process reaches the other.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from adapters.trust_client import TrustClient
from service.auditlog.verify_cli import verify_database
from service.crypto.kek import create_kek_file
from service.identity.keystore import revoke_key
from service.identity.roles import StaffRole
from service.identity.signing import sign_bundle, thumbprint
from service.identity.staff import mint_dev_staff_token
from tests.support.centre import centre_with_push
from tests.support.hub import ROOT, Network, free_port
from tests.support.messages import referral
from tests.support.processes import HANDOVER, serve_env, stop, wait_healthy

SENDERS = ("RM1", "RDE", "RGN", "RC9", "RGP", "RCX", "RGR")
MESSAGES = 160
CLIENTS = 16


def hub_env(network: Network, database: str, port: int, kek: Path) -> dict[str, str]:
    return serve_env(
        network,
        database,
        port,
        kek,
        HANDOVER_CHECKPOINT_SECONDS="0.5",
        HANDOVER_SAFETY_NET_SECONDS="0.3",
        HANDOVER_DEADLINE_ACKNOWLEDGEMENT_HOURS="0.0005",  # 1.8 s: answers fall overdue during the run
        HANDOVER_RELAY_POLL_SECONDS="0.5",
        # A push to the local recipient takes milliseconds; a short timeout gives a 16 s lease, so the jobs the
        # killed process had leased go to another process well within the wait below (with 30 s, 70 s).
        HANDOVER_PUSH_TIMEOUT_SECONDS="3",
    )


def serve(env: dict[str, str], *, workers: int = 1) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [HANDOVER, "serve", "--workers", str(workers)], env=env, cwd=ROOT, stderr=subprocess.DEVNULL
    )


@dataclass
class Sent:
    identifier: str
    request_id: str
    status: int = 0


async def send_with_retries(
    session: aiohttp.ClientSession, network: Network, ports: list[int], *, sender: str, sent: Sent, body: bytes
) -> None:
    """POST, and on no answer or 503 try again with the same X-Request-ID on another process."""
    start = random.randrange(len(ports))
    for attempt in range(40):
        port = ports[(start + attempt) % len(ports)]
        client = TrustClient(session, f"http://127.0.0.1:{port}", sender, network.private_key(sender), network.registry)
        headers = {
            "Authorization": f"Bearer {client.bearer_token()}",
            "Content-Type": "application/fhir+json",
            "X-Request-ID": sent.request_id,
        }
        try:
            async with session.post(
                f"http://127.0.0.1:{port}/fhir/$process-message", data=body, headers=headers
            ) as resp:
                await resp.read()
                sent.status = resp.status
                if resp.status == 202:
                    return
        except (aiohttp.ClientError, TimeoutError):
            sent.status = 0
        await asyncio.sleep(0.2)


async def test_three_processes_one_killed_mid_run_deliver_every_receipted_message_once(
    network: Network, database: str, tmp_path: Path
) -> None:
    kek = tmp_path / "kek.key"
    create_kek_file(kek)
    async with centre_with_push(network, tmp_path) as (edited, recipient):
        ports = [free_port() for _ in range(3)]
        envs = [hub_env(edited, database, port, kek) for port in ports]
        procs = [serve(env) for env in envs]
        try:
            for port, proc in zip(ports, procs, strict=True):
                await asyncio.to_thread(wait_healthy, port, proc)
            messages: list[tuple[str, Sent, bytes]] = []
            for number in range(MESSAGES):
                sender = SENDERS[number % len(SENDERS)]
                bundle = sign_bundle(referral(sender), edited.private_key(sender), sender)
                messages.append(
                    (sender, Sent(bundle["identifier"]["value"], str(uuid.uuid4())), json.dumps(bundle).encode())
                )
            queue = list(messages)
            timeout = aiohttp.ClientTimeout(total=20)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                a_third_sent = asyncio.Event()

                async def client() -> None:
                    while queue:
                        sender, sent, body = queue.pop()
                        if len(queue) <= MESSAGES * 2 // 3:
                            a_third_sent.set()
                        await send_with_retries(session, edited, ports, sender=sender, sent=sent, body=body)

                clients = [asyncio.create_task(client()) for _ in range(CLIENTS)]
                await a_third_sent.wait()
                procs[1].send_signal(signal.SIGKILL)  # mid-run, requests in flight
                await asyncio.to_thread(procs[1].wait, 10)
                await asyncio.sleep(1.0)
                procs[1] = serve(envs[1])
                await asyncio.to_thread(wait_healthy, ports[1], procs[1])
                await asyncio.gather(*clients)
            assert [s.status for _, s, _ in messages] == [202] * MESSAGES, "every message was receipted"
            receipted = {sent.identifier for _, sent, _ in messages}
            await wait_for(lambda: set(recipient.business) >= receipted, "every receipted message pushed")
            await asyncio.sleep(3.0)  # let three safety nets and checkpoint signers race a while longer
        finally:
            for proc in procs:
                stop(proc)

        assert recipient.duplicates() == [], "the centre's business layer saw a message twice"
        assert set(recipient.business) == receipted
        assert recipient.problems == []
        await check_store(database, edited)


async def check_store(database: str, network: Network) -> None:
    conn = await asyncpg.connect(database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM messages WHERE sender_ods <> 'hub'") >= MESSAGES
        delivered = await conn.fetch(
            "SELECT message_id, count(*) AS n FROM deliveries WHERE recipient_ods = 'RGT' GROUP BY message_id"
        )
        assert len(delivered) == MESSAGES and {row["n"] for row in delivered} == {1}
        two_roots = await conn.fetch(
            "SELECT tree_size FROM audit_checkpoints GROUP BY tree_size HAVING count(DISTINCT root_hash) > 1"
        )
        assert two_roots == [], "a checkpoint size with two roots"
        alerted = await conn.fetchval("SELECT count(*) FROM deadlines WHERE alerted_at IS NOT NULL")
        alert_messages = await conn.fetchval(
            "SELECT count(DISTINCT alert_message) FROM deadlines WHERE alert_message IS NOT NULL"
        )
        assert alerted > 0, "the safety nets had overdue answers to alert"
        assert alert_messages == alerted, "one alert per overdue answer"
        alerts_sent = await conn.fetchval(
            "SELECT count(*) FROM messages WHERE id IN (SELECT alert_message FROM deadlines)"
        )
        assert alerts_sent == alerted, "no alert sent twice"
    finally:
        await conn.close()
    report = await verify_database(database, network.registry, [], [])
    assert report.ok, report.divergences


async def test_workers_share_one_port_keys_and_a_registry_reload(
    network: Network, database: str, tmp_path: Path
) -> None:
    keys_dir = tmp_path / "keys"  # a fresh development set-up: no KEK or pseudonym key yet
    shutil.copytree(network.keys_dir, keys_dir, ignore=shutil.ignore_patterns("kek.key", "pseudonym*"))
    edited = Network(network.network_path, keys_dir, network.registry).edited(tmp_path / "network", lambda d: None)
    port = free_port()
    env = hub_env(edited, database, port, tmp_path / "unused")
    del env["HANDOVER_KEK_FILE"]  # the development default: made on first start, by the supervisor alone
    proc = serve(env, workers=2)
    base = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_healthy, port, proc)
        workers = await asyncio.to_thread(_children, proc.pid)
        assert len(workers) == 2, "two worker processes"
        # Messages sealed by either worker open in either: they share the KEK the supervisor made once.
        async with aiohttp.ClientSession() as session:
            for _ in range(6):
                async with aiohttp.ClientSession() as fresh:
                    client = TrustClient(fresh, base, "RM1", edited.private_key("RM1"), edited.registry)
                    assert (await client.send(client.sign(referral("RM1")))).accepted
            centre = TrustClient(session, base, "RGT", edited.private_key("RGT"), edited.registry)
            inbox = await centre.inbox()
        assert len(inbox) == 6
        for item in inbox:
            async with aiohttp.ClientSession() as fresh:
                centre = TrustClient(fresh, base, "RGT", edited.private_key("RGT"), edited.registry)
                await centre.fetch(item["id"])
        assert await inbox_statuses(edited, base) == {200}, "RM1 may read its mailbox through either worker"

        signing_kid = thumbprint(edited.private_key("RM1"))  # the key RM1 signs with now (others may be retired)
        revoke_key(edited.network_path, "RM1", signing_kid, at=datetime.now(UTC) - timedelta(minutes=10))
        token = mint_dev_staff_token(edited.keys_dir, user="ops.lee", role=StaffRole.OPS)
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Bearer {token}"}
            async with session.post(f"{base}/ops/reload-registry", headers=headers) as resp:
                assert resp.status == 200, await resp.text()

        async def every_worker_refuses() -> bool:
            return (await inbox_statuses(edited, base)).isdisjoint({200})

        await wait_for_async(every_worker_refuses, "both workers refuse the revoked key after one reload")
    finally:
        stop(proc)
    assert proc.returncode == 0
    assert not any(_alive(pid) for pid in workers), "no worker outlives the supervisor"


async def inbox_statuses(network: Network, base: str, tries: int = 16) -> set[int]:
    """Statuses of RM1 mailbox reads over fresh connections, which the kernel spreads over the workers."""
    statuses = set()
    for _ in range(tries):
        async with aiohttp.ClientSession() as session:
            client = TrustClient(session, base, "RM1", network.private_key("RM1"), network.registry)
            headers = {"Authorization": f"Bearer {client.bearer_token()}"}
            async with session.get(f"{base}/mailbox/RM1/inbox", headers=headers) as resp:
                statuses.add(resp.status)
    return statuses


def _children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in found]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


async def wait_for(predicate: Any, what: str, within: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting: {what}"
        await asyncio.sleep(0.1)


async def wait_for_async(predicate: Any, what: str, within: float = 90.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await predicate():
        assert loop.time() < deadline, f"timed out waiting: {what}"
        await asyncio.sleep(0.2)
