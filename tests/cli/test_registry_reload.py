"""Key lifecycle through the `handover` command, picked up by a running service on SIGHUP without a restart."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from service.identity.keystore import init_keys, load_private_jwk
from service.identity.signing import sign_bundle, sign_compact_jwt
from tests.support.hub import ROOT, free_port
from tests.support.messages import referral
from tests.support.processes import HANDOVER, wait_healthy


def post(port: int, bundle: dict[str, Any], private_jwk: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    now = int(time.time())
    token = sign_compact_jwt(
        {"iss": "RM1", "sub": "RM1", "aud": "handover", "iat": now, "exp": now + 120, "jti": str(uuid.uuid4())},
        private_jwk,
    )
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/fhir/$process-message",
        data=json.dumps(bundle).encode(),
        method="POST",
        headers={
            "Content-Type": "application/fhir+json",
            "X-Request-ID": str(uuid.uuid4()),
            "Authorization": f"Bearer {token}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([HANDOVER, *args], env=env, cwd=ROOT, capture_output=True, timeout=60, check=False)


def test_s12_rotation_and_revocation_are_picked_up_on_sighup(tmp_path: Path, database: str) -> None:
    network_path, keys_dir = tmp_path / "network.json", tmp_path / "private"
    shutil.copy(ROOT / "keys" / "network.json", network_path)
    init_keys(network_path, keys_dir)
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "HANDOVER_NETWORK": str(network_path),
        "HANDOVER_KEYS_DIR": str(keys_dir),
        "HANDOVER_LISTEN": f"127.0.0.1:{port}",
        "HANDOVER_DATABASE_URL": database,
    }
    old_key = load_private_jwk(keys_dir, "RM1")
    proc = subprocess.Popen([HANDOVER, "serve"], env=env, cwd=ROOT, stderr=subprocess.PIPE)
    try:
        wait_healthy(port, proc)
        assert post(port, sign_bundle(referral(), old_key, "RM1"), old_key)[0] == 202

        rotated = run(env, "keys", "rotate", "RM1", "--overlap-hours", "25")
        assert rotated.returncode == 0, rotated.stderr.decode()
        new_key = load_private_jwk(keys_dir, "RM1")
        assert new_key["kid"] != old_key["kid"]
        status, body = post(port, sign_bundle(referral(), new_key, "RM1"), new_key)
        assert status == 401, "before the reload the running service does not know the new key"
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert post(port, sign_bundle(referral(), new_key, "RM1"), new_key)[0] == 202
        assert post(port, sign_bundle(referral(), old_key, "RM1"), old_key)[0] == 202, "overlap: old key still works"

        revoked = run(
            env, "keys", "revoke", "RM1", old_key["kid"], "--at", (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        )
        assert revoked.returncode == 0, revoked.stderr.decode()
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        status, body = post(port, sign_bundle(referral(), old_key, "RM1"), new_key)
        assert status == 403
        assert body["issue"][0]["details"]["coding"][0]["code"] == "key-revoked"

        network_path.write_text("{ not json")
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert post(port, sign_bundle(referral(), new_key, "RM1"), new_key)[0] == 202, "a bad file keeps the old"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert "registry" in stderr.decode().lower()
