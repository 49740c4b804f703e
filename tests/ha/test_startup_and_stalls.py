"""A hub and a database that is not (yet, or no longer) answering, without a cluster: a fault proxy stands in.

* A hub started while no primary answers waits (logging what it waits for), then serves once one does; after
  HANDOVER_DATABASE_WAIT_SECONDS it exits 1 with a sentence, not a traceback (issue 27, item 1d).
* A hub refuses a database whose schema holds a migration it does not know (issue 27, item 4).
* An acceptance whose COMMIT is never answered costs a 503 within HANDOVER_INTAKE_DATABASE_TIMEOUT_SECONDS, not
  asyncpg's 30 s; three such stalls in a row drop every pooled connection (issue 27, item 2). The real half-dead
  primary is in test_patroni_failover.py.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from service.crypto.kek import create_kek_file
from service.store import db
from tests.ha.hubs import hub_env, start_hub
from tests.support.faultproxy import Action, FaultProxy
from tests.support.hub import Network, RunningHub, free_port, running_hub
from tests.support.messages import referral


def through(proxy: FaultProxy, dsn: str) -> str:
    parts = urlsplit(dsn)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{proxy.port}" if credentials else f"127.0.0.1:{proxy.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def target_of(dsn: str) -> tuple[str, int]:
    parts = urlsplit(dsn)
    return parts.hostname or "127.0.0.1", parts.port or 5432


async def test_d_hub_started_without_a_primary_waits_then_serves(
    network: Network, database: str, tmp_path: Path
) -> None:
    kek = tmp_path / "kek.key"
    create_kek_file(kek)
    async with FaultProxy(*target_of(database)) as proxy:
        proxy.reset(refuse=True)  # every connection refused: no primary
        env = hub_env(network, through(proxy, database), free_port(), kek, HANDOVER_DATABASE_WAIT_SECONDS="120")
        hub = start_hub(env, tmp_path / "logs")
        try:
            deadline = time.monotonic() + 60
            while not any("waiting for a writable primary" in m for m in hub.log_messages()):
                assert hub.proc.poll() is None, "\n".join(hub.log_lines())
                assert time.monotonic() < deadline, "no log line saying what the hub waits for"
                await asyncio.sleep(0.2)
            assert proxy.connections_made > 0
            await asyncio.sleep(1.0)
            assert hub.proc.poll() is None, "still waiting, not exited"
            proxy.heal()  # a primary at last
            await asyncio.to_thread(hub.wait_ready)
            status, _ = await post_referral(network, hub.base_url)
            assert status == 202
        finally:
            await asyncio.to_thread(hub.stop)  # its last queries pass through the proxy, run by this loop
    assert hub.proc.returncode == 0, "stopped cleanly on SIGTERM"
    assert not any("Traceback" in line for line in hub.log_lines())


async def test_d_hub_gives_up_after_the_bound_with_a_sentence_not_a_traceback(network: Network, tmp_path: Path) -> None:
    kek = tmp_path / "kek.key"
    create_kek_file(kek)
    nothing = f"postgresql://postgres@127.0.0.1:{free_port()},127.0.0.1:{free_port()}/handover"
    env = hub_env(network, nothing, free_port(), kek, HANDOVER_DATABASE_WAIT_SECONDS="2")
    hub = start_hub(env, tmp_path / "logs")
    code = await asyncio.to_thread(hub.proc.wait, 60)
    output = "\n".join(hub.log_lines())
    assert code == 1, output
    assert "No writable PostgreSQL primary at 127.0.0.1:" in output
    assert "HANDOVER_DATABASE_WAIT_SECONDS=2" in output
    assert "waiting for a writable primary" in output
    assert "Traceback" not in output


async def test_hub_refuses_a_database_whose_schema_is_newer_than_it_knows(
    network: Network, database: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, sha256) VALUES (9001, 'from_a_later_release', 'x')"
        )
    finally:
        await conn.close()
    with pytest.raises(db.SchemaTooNewError, match="9001_from_a_later_release"):
        await db.migrate(database)

    kek = tmp_path / "kek.key"
    create_kek_file(kek)
    hub = start_hub(hub_env(network, database, free_port(), kek), tmp_path / "logs")
    code = await asyncio.to_thread(hub.proc.wait, 60)
    output = "\n".join(hub.log_lines())
    assert code == 1, output
    assert "schema is newer than this hub" in output
    assert "9001_from_a_later_release" in output
    assert "Traceback" not in output


async def post_referral(
    network: Network, base_url: str, *, sender: str = "RM1", body: bytes | None = None, request_id: str | None = None
) -> tuple[int, dict[str, str]]:
    import aiohttp

    from adapters.trust_client import TrustClient

    async with aiohttp.ClientSession() as session:
        client = TrustClient(session, base_url, sender, network.private_key(sender), network.registry)
        headers = {
            "Authorization": f"Bearer {client.bearer_token()}",
            "Content-Type": "application/fhir+json",
            "X-Request-ID": request_id or str(uuid.uuid4()),
        }
        data = body if body is not None else json.dumps(client.sign(referral(sender))).encode()
        async with session.post(f"{base_url}/fhir/$process-message", data=data, headers=headers) as resp:
            await resp.read()
            return resp.status, dict(resp.headers)


async def test_a_commit_never_answered_costs_a_fast_503_and_stalls_in_a_row_reset_the_pool(
    network: Network, database: str
) -> None:
    async with (
        FaultProxy(*target_of(database)) as proxy,
        running_hub(network, through(proxy, database), intake_database_timeout_seconds=1.0) as hub,
    ):
        first = await hub.trust("RM1").send(hub.trust("RM1").sign(referral("RM1")))
        assert first.accepted, "served while the database answers"
        stalled = []
        for _ in range(3):
            signed = hub.trust("RM1").sign(referral("RM1"))
            outgoing = (json.dumps(signed).encode(), str(uuid.uuid4()))
            proxy.arm(b"UPDATE idempotency_keys SET receipt", b"COMMIT", Action.HOLD_REPLIES)  # no answer
            started = time.monotonic()
            status, body, headers = await hub.post_raw(outgoing[0], request_id=outgoing[1])
            took = time.monotonic() - started
            assert proxy.fired.is_set()
            assert status == 503, body
            assert int(headers["Retry-After"]) > 0
            assert took < 15, f"answered after {took:.1f} s: the 1 s bound, not asyncpg's 30 s command timeout"
            stalled.append(outgoing)

        figures = await metrics_text(hub)
        assert figure(figures, "handover_database_stalls_total") == 3
        assert figure(figures, "handover_database_pool_resets_total") == 1

        # The database did commit each of them (only its answer was lost): the retry gets the same receipt.
        for body, request_id in stalled:
            status, _, headers = await hub.post_raw(body, request_id=request_id)
            assert status == 202
            assert headers.get("X-Handover-Replayed") == "true"
    conn = await asyncpg.connect(database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM messages WHERE sender_ods = 'RM1'") == 4
    finally:
        await conn.close()


async def metrics_text(hub: RunningHub) -> str:
    async with hub.session.get(f"{hub.base_url}/metrics") as resp:
        return await resp.text()


def figure(text: str, name: str) -> float:
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{")]
    assert len(values) == 1, f"{name}: {values}"
    return values[0]
