"""`handover send` signs with a trust's dev key and posts; `handover verify` checks messages and receipts."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from adapters.envelope import fresh_envelope
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


EXAMPLE = ROOT / "fhir_profiles" / "examples" / "Bundle-referral.json"


async def test_send_the_readme_example_dates_and_identifies_it_and_prints_the_receipt_alone(
    hub: RunningHub, tmp_path: Path
) -> None:
    """Issue 26 item 4: `handover send --as RM1 fhir_profiles/examples/Bundle-referral.json` as the README shows.
    The example is dated weeks ago: send gives the message it signs a fresh timestamp, Bundle.identifier and
    MessageHeader.id, says so on stderr, and prints the receipt alone on stdout (to paste or pipe)."""
    example = json.loads(EXAMPLE.read_text())
    code, out, err = await handover(hub, "send", "--as", "RM1", "--url", hub.base_url, str(EXAMPLE))
    assert code == 0, err
    receipt = json.loads(out)  # stdout is the receipt and nothing else
    assert receipt["resourceType"] == "Bundle" and receipt["entry"][0]["resource"]["response"]["code"] == "ok"
    assert "HTTP 202" in err
    assert example["identifier"]["value"] not in err and "Bundle.identifier urn:uuid:" in err, "says what it sent"
    (tmp_path / "receipt.json").write_text(out)
    code, verified, _ = await handover(hub, "verify", str(tmp_path / "receipt.json"))
    assert code == 0 and "VALID" in verified
    assert json.loads(EXAMPLE.read_text()) == example, "the file itself is left as it is"


async def test_send_as_is_sends_the_files_own_date_and_identifiers_and_reports_the_refusal_on_stderr(
    hub: RunningHub,
) -> None:
    code, out, err = await handover(hub, "send", "--as", "RM1", "--as-is", "--url", hub.base_url, str(EXAMPLE))
    assert code == 1
    assert out == "", "nothing on stdout but a receipt"
    assert "HTTP 422" in err and "stale-message" in err


async def test_send_to_a_hub_that_is_not_there_says_so_without_a_traceback(hub: RunningHub) -> None:
    code, out, err = await handover(hub, "send", "--as", "RM1", "--url", "http://127.0.0.1:9", str(EXAMPLE))
    assert code == 1
    assert out == ""
    assert "Traceback" not in err and "http://127.0.0.1:9" in err, err


def test_a_fresh_envelope_changes_the_envelope_only_and_follows_references_to_the_header() -> None:
    example = json.loads(EXAMPLE.read_text())
    old_header = example["entry"][0]["resource"]["id"]
    example["entry"][1]["resource"]["basedOn"] = [{"reference": f"urn:uuid:{old_header}"}]  # a reference to follow
    example["signature"] = {"data": "old"}
    now = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
    fresh, envelope = fresh_envelope(example, now)
    header = fresh["entry"][0]["resource"]
    assert (fresh["timestamp"], envelope.timestamp) == ("2026-12-07T15:00:00Z", "2026-12-07T15:00:00Z")
    assert header["id"] == envelope.message_header_id != old_header
    assert fresh["entry"][0]["fullUrl"] == f"urn:uuid:{header['id']}"
    assert fresh["entry"][1]["resource"]["basedOn"] == [{"reference": f"urn:uuid:{header['id']}"}]
    assert fresh["identifier"] == {"system": example["identifier"]["system"], "value": envelope.bundle_identifier}
    assert envelope.bundle_identifier != example["identifier"]["value"] and fresh["id"] != example["id"]
    assert "signature" not in fresh
    assert fresh["entry"][2:] == example["entry"][2:], "the content is the file's"
    assert example["entry"][0]["resource"]["id"] == old_header, "the original is not changed"
