"""`handover send` signs with a trust's dev key and posts; `handover verify` checks messages and receipts."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from tests.support.hub import ROOT, RunningHub
from tests.support.messages import referral
from tests.support.processes import HANDOVER


async def handover(hub: RunningHub, *args: str) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "HANDOVER_NETWORK": str(hub.network.network_path),
        "HANDOVER_KEYS_DIR": str(hub.network.keys_dir),
    }
    proc = await asyncio.create_subprocess_exec(
        HANDOVER, *args, env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_send_prints_a_receipt_that_verify_accepts(hub: RunningHub, tmp_path: Path) -> None:
    unsigned = tmp_path / "referral.json"
    unsigned.write_text(json.dumps(referral()))
    code, out, err = await handover(hub, "send", "--as", "RM1", "--url", hub.base_url, str(unsigned))
    assert code == 0, err
    receipt = json.loads(out)
    assert receipt["entry"][0]["resource"]["response"]["code"] == "ok"
    receipt_file = tmp_path / "receipt.json"
    receipt_file.write_text(out)
    code, out, err = await handover(hub, "verify", str(receipt_file))
    assert code == 0, out + err
    assert "VALID" in out


async def test_verify_refuses_a_tampered_message(hub: RunningHub, tmp_path: Path) -> None:
    signed = hub.trust("RM1").sign(referral())
    signed["entry"][1]["resource"]["note"][0]["text"] += " (edited)"
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(signed))
    code, out, _ = await handover(hub, "verify", str(path))
    assert code == 1
    assert "INVALID" in out


async def test_send_reports_a_refusal_with_exit_1(hub: RunningHub, tmp_path: Path) -> None:
    bundle = referral()
    bundle["entry"][0]["resource"]["destination"][0]["receiver"]["identifier"]["value"] = "ZZZ99"
    path = tmp_path / "unknown.json"
    path.write_text(json.dumps(bundle))
    code, _, err = await handover(hub, "send", "--as", "RM1", "--url", hub.base_url, str(path))
    assert code == 1
    assert "unknown-recipient" in err
