"""Rotating the hub's own signing key without a restart (T7), while messages flow.

A real hub on a real port and database takes referrals from four trusts at once; mid-stream the operator runs
`handover keys rotate hub` and reloads the registry (POST /ops/reload-registry). Every receipt must verify
against the final registry, everything signed after the reload must carry the new kid, checkpoints before and
after verify (each stored with its signer's kid), and `handover audit verify` passes given both checkpoints
and receipts from either side of the rotation.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg

from service.identity.hubkey import HubSigningKey, hub_jwk
from service.identity.keystore import rotate_key
from service.identity.notes import hub_note_keys, log_origin, verify_checkpoint
from service.identity.registry import RegistryHolder, load_registry
from service.identity.signing import sign_bundle, thumbprint, verify_bundle_signature
from tests.support.hub import Network, RunningHub, running_hub
from tests.support.messages import referral

SENDERS = ("RM1", "RDE", "RGN", "RC9")


class Receipts:
    """Receipts as they come back, each with the loop time its request started; `reach(n)` waits for n."""

    def __init__(self) -> None:
        self.items: list[tuple[float, Any]] = []
        self._grown = asyncio.Condition()

    async def add(self, started: float, receipt: Any) -> None:
        async with self._grown:
            self.items.append((started, receipt))
            self._grown.notify_all()

    async def reach(self, count: int) -> None:
        async with self._grown:
            await asyncio.wait_for(self._grown.wait_for(lambda: len(self.items) >= count), timeout=60)


async def _send_until(hub: RunningHub, ods: str, stop: asyncio.Event, receipts: Receipts) -> None:
    key = hub.network.private_key(ods)
    while not stop.is_set():
        bundle = sign_bundle(referral(sender=ods), key, ods)
        started = asyncio.get_running_loop().time()  # a request started after the reload answered must use the new key
        status, body, _ = await hub.post_raw(json.dumps(bundle).encode(), as_ods=ods)
        assert status == 202, body
        await receipts.add(started, body)


async def _latest_checkpoint(dsn: str) -> asyncpg.Record | None:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchrow("SELECT tree_size, key_id, note FROM audit_checkpoints ORDER BY tree_size DESC")
    finally:
        await conn.close()


async def _checkpoint_by(dsn: str, kid: str, *, within: float = 30.0) -> asyncpg.Record:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        latest = await _latest_checkpoint(dsn)
        if latest is not None and latest["key_id"] == kid:
            return latest
        await asyncio.sleep(0.1)
    raise AssertionError(f"no checkpoint signed by {kid} within {within} s")


async def test_t7_hub_key_rotates_mid_stream_without_a_restart(database: str, tmp_path: Path) -> None:
    network = Network.create(tmp_path / "network")
    old_kid = network.registry.active_hub_key().kid
    receipts = Receipts()
    stop = asyncio.Event()
    async with running_hub(network, database, checkpoint_seconds=0.2) as hub:
        senders = [asyncio.create_task(_send_until(hub, ods, stop, receipts)) for ods in SENDERS]
        await receipts.reach(20)
        before = await _checkpoint_by(database, old_kid)

        report = await asyncio.to_thread(rotate_key, network.network_path, network.keys_dir, "hub")
        await asyncio.sleep(0.3)  # rotated on disk, not yet reloaded: the hub still signs with the old key
        async with hub.session.post(
            f"{hub.base_url}/ops/reload-registry",
            headers={"Authorization": f"Bearer {hub.staff_token('ops')}"},
        ) as resp:
            assert resp.status == 200, await resp.text()
        reloaded_at = asyncio.get_running_loop().time()
        await receipts.reach(len(receipts.items) + 20)
        after = await _checkpoint_by(database, report.new_kid)
        stop.set()
        await asyncio.gather(*senders)

    registry = load_registry(network.network_path)
    assert registry.active_hub_key().kid == report.new_kid and report.retired_kids == (old_kid,)
    assert registry.hub_key(old_kid) is not None and registry.hub_key(old_kid).status == "retiring"  # type: ignore[union-attr]
    kids = []
    for started, receipt in receipts.items:
        signature = verify_bundle_signature(receipt, registry.hub_key)
        assert signature.owner_ods == "hub" and signature.key is not None
        assert signature.key.verifies_at(signature.signed_at), "every receipt verifies against the final registry"
        kids.append(signature.kid)
        if started > reloaded_at:
            assert signature.kid == report.new_kid, "after the reload, receipts are signed with the new key"
    assert set(kids) == {old_kid, report.new_kid}
    first_new = kids.index(report.new_kid)
    assert all(kid == report.new_kid for kid in kids[first_new:]), "no receipt goes back to the old key"

    keys = hub_note_keys(log_origin(registry.network), registry.hub_keys)
    assert verify_checkpoint(before["note"], keys).signed_by == (old_kid,)
    assert verify_checkpoint(after["note"], keys).signed_by == (report.new_kid,)
    assert after["tree_size"] > before["tree_size"]

    (tmp_path / "before.note").write_text(before["note"])
    (tmp_path / "after.note").write_text(after["note"])
    (tmp_path / "old-receipt.json").write_text(json.dumps(receipts.items[0][1]))
    (tmp_path / "new-receipt.json").write_text(json.dumps(receipts.items[-1][1]))
    verify = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.cli",
        "audit",
        "verify",
        "--database-url",
        database,
        "--network",
        str(network.network_path),
        *("--checkpoint", str(tmp_path / "before.note"), "--checkpoint", str(tmp_path / "after.note")),
        *("--receipt", str(tmp_path / "old-receipt.json"), "--receipt", str(tmp_path / "new-receipt.json")),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1"},
    )
    output, _ = await asyncio.wait_for(verify.communicate(), timeout=120)
    assert verify.returncode == 0, output.decode()


def test_the_key_in_service_changes_only_when_the_registry_in_service_names_it(tmp_path: Path) -> None:
    network = Network.create(tmp_path / "network")
    holder = RegistryHolder.from_file(network.network_path)
    key = HubSigningKey(network.keys_dir, holder)
    old_kid = key.kid
    report = rotate_key(network.network_path, network.keys_dir, "hub")
    assert key.kid == old_kid and thumbprint(hub_jwk(key)) == old_kid, "rotated on disk, not reloaded: old key"
    assert holder.reload(network.network_path).ok
    assert key.kid == report.new_kid and thumbprint(hub_jwk(key)) == report.new_kid

    second = rotate_key(network.network_path, network.keys_dir, "hub")  # the first new key is now archived
    (network.keys_dir / "hub.jwk").unlink()  # and the newest private key is lost
    assert holder.reload(network.network_path).ok
    assert key.kid == report.new_kid, "without the active key's private part, the key in use stays"
    assert second.new_kid != report.new_kid


async def test_t7_alerts_after_the_reload_are_signed_with_the_new_hub_key(database: str, tmp_path: Path) -> None:
    from adapters.trust_client import TrustClient
    from service.app import SAFETY_NET
    from tests.episodes.test_episodes_api import Clock

    network = Network.create(tmp_path / "network")
    clock = Clock()
    async with running_hub(network, database, clock=clock) as hub:
        client = hub.trust("RM1")
        assert (await client.send(client.sign(referral("RM1", "RGT")))).accepted
        report = rotate_key(network.network_path, network.keys_dir, "hub")
        async with hub.session.post(
            f"{hub.base_url}/ops/reload-registry", headers={"Authorization": f"Bearer {hub.staff_token('ops')}"}
        ) as resp:
            assert resp.status == 200
        clock.offset = timedelta(hours=5)  # the acknowledgement is overdue: the safety net alerts RM1
        assert await hub.app[SAFETY_NET].sweep() == 1
        registry = load_registry(network.network_path)
        referrer = TrustClient(hub.session, hub.base_url, "RM1", network.private_key("RM1"), registry)
        [item] = await referrer.inbox()
        alert, signature = await referrer.fetch(item["id"])
    assert signature.owner_ods == "hub" and signature.kid == report.new_kid
    assert verify_bundle_signature(alert, registry.hub_key).kid == report.new_kid
