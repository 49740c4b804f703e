"""F14: the key-encryption key becomes unavailable (here: its file disappears, as when a secrets volume is lost).
The service fails closed: acceptance answers 503 `unavailable` with Retry-After and stores nothing, the mailbox
cannot hand out payloads, the relay pauses without counting attempts; all resume when the key is back, without a
restart."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import asyncpg

from service.crypto.kek import create_kek_file
from service.receipts import receipt_parameters
from tests.delivery.delivery_fixtures import outbox_world, recipients
from tests.support.hub import Network, running_hub
from tests.support.messages import error_codes, referral


async def test_f14_relay_pauses_while_the_kek_is_unavailable_and_resumes(
    database: str, network: Network, tmp_path: Path
) -> None:
    async with outbox_world(database, network, tmp_path) as world, recipients(network, "RGT") as (rgt,):
        sent = [await world.accept() for _ in range(3)]
        relay = world.relay({"RGT": rgt.endpoint})
        away = world.kek_file.with_suffix(".away")
        world.kek_file.rename(away)
        await relay.run_once()
        assert relay.gate.paused
        assert await relay.run_once() == 0, "paused: nothing leased"
        rows = await world.fetch("SELECT state, attempts, lease_token FROM deliveries")
        assert [(r["state"], r["attempts"], r["lease_token"]) for r in rows] == [("pending", 0, None)] * 3
        assert rgt.requests == [], "nothing leaves the hub undecrypted or otherwise"
        away.rename(world.kek_file)
        await relay.run_once()
        assert not relay.gate.paused
        assert set((await world.states()).values()) == {"delivered"}
        await world.check_inv2(rgt, exactly={s.bundle_identifier for s in sent})


async def test_f14_acceptance_and_mailbox_fail_closed_while_the_kek_is_unavailable(
    database: str, network: Network, tmp_path: Path
) -> None:
    kek_file = tmp_path / "kek.key"
    create_kek_file(kek_file)
    async with running_hub(network, database, kek_file=kek_file) as hub:
        first = hub.trust("RM1").sign(referral())
        status, receipt, headers = await hub.post_raw(json.dumps(first).encode())
        assert status == 202
        away = kek_file.with_suffix(".away")
        kek_file.rename(away)
        try:
            body, request_id = json.dumps(hub.trust("RM1").sign(referral())).encode(), str(uuid.uuid4())
            status, outcome, headers = await hub.post_raw(body, request_id=request_id)
            assert status == 503 and headers["Retry-After"].isdigit()
            assert "unavailable" in error_codes(outcome)
            auth = {"Authorization": f"Bearer {hub.trust('RGT').bearer_token()}"}
            url = f"{hub.base_url}/mailbox/RGT/inbox/{receipt_parameters(receipt)['message-id']}"
            async with hub.session.get(url, headers=auth) as resp:
                assert resp.status == 503, "no payload can be opened either"
            conn = await asyncpg.connect(hub.dsn)
            try:
                assert await conn.fetchval("SELECT count(*) FROM messages") == 1, "nothing stored"
                assert await conn.fetchval("SELECT count(*) FROM idempotency_keys") == 1
            finally:
                await conn.close()
        finally:
            away.rename(kek_file)
        status, _, _ = await hub.post_raw(body, request_id=request_id)
        assert status == 202, "recovers without a restart"
