"""T7 through the commands an operator types: `handover serve` takes referrals from three trusts at once while
`handover keys rotate hub` runs and the process gets SIGHUP. No restart: receipts answered after the reload are
signed with the new key, every receipt verifies against the final registry, checkpoints before and after carry
their signer's kid, and `handover audit verify` passes with a checkpoint and a receipt from each side."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg

from service.identity.keystore import init_keys, load_private_jwk
from service.identity.registry import load_registry
from service.identity.signing import sign_bundle, sign_compact_jwt, verify_bundle_signature
from tests.support.hub import ROOT, free_port
from tests.support.messages import referral
from tests.support.processes import HANDOVER, wait_healthy

SENDERS = ("RM1", "RDE", "RGN")


def post(port: int, ods: str, key: dict[str, Any]) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": ods, "sub": ods, "aud": "handover", "iat": now, "exp": now + 120, "jti": str(uuid.uuid4())}
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/fhir/$process-message",
        data=json.dumps(sign_bundle(referral(ods, "RGT"), key, ods)).encode(),
        method="POST",
        headers={
            "Content-Type": "application/fhir+json",
            "X-Request-ID": str(uuid.uuid4()),
            "Authorization": f"Bearer {sign_compact_jwt(claims, key)}",
        },
    )
    with urllib.request.urlopen(request, timeout=20) as resp:  # noqa: S310
        assert resp.status == 202
        return dict(json.loads(resp.read()))


def checkpoints(dsn: str) -> list[tuple[int, str, str]]:
    async def read() -> list[tuple[int, str, str]]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT tree_size, key_id, note FROM audit_checkpoints ORDER BY tree_size")
        finally:
            await conn.close()
        return [(int(r["tree_size"]), str(r["key_id"]), str(r["note"])) for r in rows]

    return asyncio.run(read())


def test_t7_keys_rotate_hub_and_sighup_while_trusts_send(tmp_path: Path, database: str) -> None:
    network_path, keys_dir = tmp_path / "network.json", tmp_path / "private"
    shutil.copy(ROOT / "keys" / "network.json", network_path)
    init_keys(network_path, keys_dir)
    old_kid = load_registry(network_path).active_hub_key().kid
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "HANDOVER_NETWORK": str(network_path),
        "HANDOVER_KEYS_DIR": str(keys_dir),
        "HANDOVER_LISTEN": f"127.0.0.1:{port}",
        "HANDOVER_DATABASE_URL": database,
        "HANDOVER_CHECKPOINT_SECONDS": "0.2",
        "HANDOVER_CHECKPOINT_RECORD_DIR": str(tmp_path / "record"),
    }
    keys = {ods: load_private_jwk(keys_dir, ods) for ods in SENDERS}
    receipts: list[tuple[float, dict[str, Any]]] = []
    stop = threading.Event()

    def sender(ods: str) -> None:
        while not stop.is_set():
            started = time.monotonic()
            receipts.append((started, post(port, ods, keys[ods])))

    proc = subprocess.Popen([HANDOVER, "serve"], env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
    pool = ThreadPoolExecutor(len(SENDERS))
    try:
        wait_healthy(port, proc)
        running = [pool.submit(sender, ods) for ods in SENDERS]
        while len(receipts) < 15:
            time.sleep(0.05)
        rotated = subprocess.run(
            [HANDOVER, "keys", "rotate", "hub"], env=env, cwd=ROOT, capture_output=True, timeout=60, check=False
        )
        assert rotated.returncode == 0, rotated.stderr.decode()
        assert b"no restart needed" in rotated.stderr.replace(b"\n", b" ")
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)  # the signal is handled within the event loop's next turn
        reloaded_at = time.monotonic()
        at_reload = len(receipts)
        while len(receipts) < at_reload + 15:
            time.sleep(0.05)
        time.sleep(0.5)  # a checkpoint by the new key covers what was sent
        stop.set()
        for future in running:
            future.result()
        time.sleep(0.5)
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)

    registry = load_registry(network_path)
    new_kid = registry.active_hub_key().kid
    assert new_kid != old_kid
    kids = []
    for started, receipt in receipts:
        signature = verify_bundle_signature(receipt, registry.hub_key)
        assert signature.key is not None and signature.key.verifies_at(signature.signed_at)
        kids.append(signature.kid)
        if started > reloaded_at:
            assert signature.kid == new_kid
    assert old_kid in kids and new_kid in kids
    stored = checkpoints(database)
    signers = [kid for _, kid, _ in stored]
    assert old_kid in signers and signers[-1] == new_kid, "checkpoints before and after, each with its signer's kid"
    before = next(note for _, kid, note in stored if kid == old_kid)
    (tmp_path / "before.note").write_text(before)
    (tmp_path / "after.note").write_text(stored[-1][2])
    (tmp_path / "old.json").write_text(json.dumps(receipts[0][1]))
    (tmp_path / "new.json").write_text(json.dumps(receipts[-1][1]))
    verify = subprocess.run(
        [
            *(HANDOVER, "audit", "verify", "--checkpoint", str(tmp_path / "before.note")),
            *("--checkpoint", str(tmp_path / "after.note"), "--receipt", str(tmp_path / "old.json")),
            *("--receipt", str(tmp_path / "new.json")),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout.decode() + verify.stderr.decode()
    assert b"audit log verified" in verify.stderr
