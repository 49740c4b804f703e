"""The audit endpoints on a running hub: a receipt's audit index is proven included in a signed checkpoint
with the independent verifier; consistency proofs between checkpoints; entries; and refusals."""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from rich.console import Console

import tests.support.hub as hub_support
from service.auditlog import verifier
from service.auditlog.verify_cli import add_verify_arguments, verify_command
from service.config import Settings
from service.http import audit
from service.identity.notes import Checkpoint, hub_note_keys, log_origin, verify_checkpoint
from service.receipts import ReceiptFacts, build_signed_receipt, receipt_parameters
from tests.support.hub import Network, RunningHub, running_hub
from tests.support.messages import error_codes, referral

_build_app = hub_support.build_app


def build_app_with_audit(settings: Settings, dsn: str, **options: Any) -> web.Application:
    """The service as built by service.app, with the audit endpoints and signer added if it lacks them."""
    app = _build_app(settings, dsn, **options)
    if not any(getattr(r.resource, "canonical", None) == "/audit/checkpoint" for r in app.router.routes()):
        audit.install(app, settings)
    return app


@pytest.fixture
async def audited_hub(network: Network, database: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RunningHub]:
    monkeypatch.setattr(hub_support, "build_app", build_app_with_audit)
    async with running_hub(network, database, checkpoint_seconds=0.2) as running:
        yield running


async def send_referral(hub: RunningHub) -> dict[str, Any]:
    client = hub.trust("RM1")
    result = await client.send(client.sign(referral()))
    assert result.accepted, result.body
    return result.body


async def get_json(hub: RunningHub, path: str, **headers: str) -> tuple[int, Any]:
    async with hub.session.get(hub.base_url + path, headers=headers) as resp:
        return resp.status, json.loads(await resp.read())


async def checkpoint_covering(hub: RunningHub, size: int) -> Checkpoint:
    return (await note_covering(hub, size))[0]


async def note_covering(hub: RunningHub, size: int) -> tuple[Checkpoint, str]:
    """The latest checkpoint once it covers `size` entries, its signature checked with the registry's hub keys."""
    origin = log_origin(hub.network.registry.network)
    keys = hub_note_keys(origin, hub.network.registry.hub_keys)
    for _ in range(300):  # the signer runs every 0.2 s; allow a minute on a slow machine
        async with hub.session.get(f"{hub.base_url}/audit/checkpoint") as resp:
            if resp.status == 200:
                assert resp.content_type == "text/plain"
                note = await resp.text()
                checkpoint = verify_checkpoint(note, keys)
                if checkpoint.tree_size >= size:
                    return checkpoint, note
        await asyncio.sleep(0.2)
    raise AssertionError(f"no checkpoint covering {size} entries was published")


def b64(values: list[str]) -> list[bytes]:
    return [base64.b64decode(v) for v in values]


async def test_a_receipts_audit_index_is_proven_included_in_the_signed_checkpoint(audited_hub: RunningHub) -> None:
    receipts = [receipt_parameters(await send_referral(audited_hub)) for _ in range(3)]
    indexes = [int(r["audit-index"]) for r in receipts]
    checkpoint = await checkpoint_covering(audited_hub, max(indexes) + 1)
    for params in receipts:
        index, leaf_hash = int(params["audit-index"]), base64.b64decode(params["leaf-hash"])
        status, body = await get_json(audited_hub, f"/audit/proof/inclusion?index={index}&size={checkpoint.tree_size}")
        assert status == 200
        assert verifier.verify_inclusion(
            leaf_hash, index, checkpoint.tree_size, b64(body["hashes"]), checkpoint.root_hash
        )
        assert not verifier.verify_inclusion(
            leaf_hash, index ^ 1, checkpoint.tree_size, b64(body["hashes"]), checkpoint.root_hash
        )


async def test_consistency_between_two_published_checkpoints(audited_hub: RunningHub) -> None:
    await send_referral(audited_hub)
    first = await checkpoint_covering(audited_hub, 1)
    for _ in range(3):
        await send_referral(audited_hub)
    second = await checkpoint_covering(audited_hub, first.tree_size + 3)
    status, body = await get_json(
        audited_hub, f"/audit/proof/consistency?first={first.tree_size}&second={second.tree_size}"
    )
    assert status == 200
    assert verifier.verify_consistency(
        first.tree_size, second.tree_size, first.root_hash, second.root_hash, b64(body["hashes"])
    )
    status, body = await get_json(
        audited_hub, f"/audit/proof/consistency?first={second.tree_size}&second={second.tree_size}"
    )
    assert (status, body) == (200, {"hashes": []})


async def test_entries_are_for_governance_staff_and_hash_to_the_receipts_leaf(audited_hub: RunningHub) -> None:
    params = receipt_parameters(await send_referral(audited_hub))
    index = int(params["audit-index"])
    path = f"/audit/entries?start={index}&end={index}"
    governance = {"Authorization": f"Bearer {audited_hub.staff_token('governance')}"}
    status, body = await get_json(audited_hub, path, **governance)
    assert status == 200 and [e["index"] for e in body] == [index]
    leaf = base64.b64decode(body[0]["leaf"])
    assert verifier.leaf_hash(leaf) == base64.b64decode(params["leaf-hash"])
    assert json.loads(leaf)["message_id"] == params["message-id"]

    status, body = await get_json(audited_hub, "/audit/entries?start=0&end=100000", **governance)
    assert status == 200 and [e["index"] for e in body] == list(range(len(body))) and len(body) > index
    for headers in (
        {},
        {"Authorization": f"Bearer {audited_hub.staff_token('ops')}"},
        {"Authorization": f"Bearer {audited_hub.trust('RM1').bearer_token()}"},
    ):
        status, body = await get_json(audited_hub, path, **headers)
        assert status in (401, 403) and set(error_codes(body)) & {"unauthenticated", "forbidden"}


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/audit/proof/inclusion?size=1", 400, "bad-header"),
        ("/audit/proof/inclusion?index=x&size=1", 400, "bad-header"),
        ("/audit/proof/inclusion?index=-1&size=1", 400, "bad-header"),
        ("/audit/proof/inclusion?index=0&index=0&size=1", 400, "bad-header"),
        ("/audit/proof/inclusion?index=1&size=1", 400, "bad-header"),
        ("/audit/proof/inclusion?index=0&size=99999", 404, "not-found"),
        ("/audit/proof/inclusion?index=0&size=99999999999999999999", 400, "bad-header"),
        ("/audit/proof/consistency?first=0&second=1", 400, "bad-header"),
        ("/audit/proof/consistency?first=2&second=1", 400, "bad-header"),
        ("/audit/proof/consistency?first=1&second=99999", 404, "not-found"),
        ("/audit/entries?start=99999", 404, "not-found"),
        ("/audit/entries?start=2&end=1", 400, "bad-header"),
        ("/audit/entries", 400, "bad-header"),
    ],
)
async def test_bad_or_out_of_range_parameters_are_refused(
    audited_hub: RunningHub, path: str, status: int, code: str
) -> None:
    await send_referral(audited_hub)
    headers = {"Authorization": f"Bearer {audited_hub.staff_token('governance')}"} if "entries" in path else {}
    got, body = await get_json(audited_hub, path, **headers)
    assert (got, error_codes(body)[0]) == (status, code)


async def test_inv3_the_offline_verifier_passes_on_the_hubs_log_with_its_receipts(
    audited_hub: RunningHub, tmp_path: Path, network: Network
) -> None:
    receipts = [await send_referral(audited_hub) for _ in range(2)]
    await audited_hub.post_raw(b"{")  # a refusal is logged too
    _, note = await note_covering(audited_hub, 3)
    files = []
    for number, receipt in enumerate(receipts):
        files.append(tmp_path / f"receipt-{number}.json")
        files[-1].write_text(json.dumps(receipt))
    (tmp_path / "held.txt").write_text(note)
    arguments = [f"--checkpoint={tmp_path / 'held.txt'}", "--no-progress", f"--network={network.network_path}"]
    assert await run_verify(audited_hub, [*arguments, *(f"--receipt={f}" for f in files)]) == 0

    # Receipts the hub signed for entries that are not in the log (another index, another leaf) are reported.
    params = receipt_parameters(receipts[0])
    facts = ReceiptFacts(
        message_id=uuid.UUID(params["message-id"]),
        payload_sha256=params["sha256"],
        audit_index=int(params["audit-index"]),
        leaf_hash=base64.b64decode(params["leaf-hash"]),
        accepted_at=datetime.fromisoformat(params["accepted-at"].replace("Z", "+00:00")),
        sender_ods="RM1",
        request_header_id="x",
        bundle_identifier=params["bundle-identifier"],
    )
    forgeries = [
        replace(facts, audit_index=facts.audit_index + 1),
        replace(facts, leaf_hash=verifier.leaf_hash(b"another leaf")),
        replace(facts, payload_sha256="0" * 64),
    ]
    for number, wrong in enumerate(forgeries):
        forged = tmp_path / f"forged-{number}.json"
        forged.write_bytes(build_signed_receipt(wrong, "urn:x", network.private_key("hub")))
        assert await run_verify(audited_hub, [*arguments, f"--receipt={forged}"]) == 1, wrong


async def run_verify(hub: RunningHub, arguments: list[str]) -> int:
    parser = argparse.ArgumentParser()
    add_verify_arguments(parser)
    output = io.StringIO()
    status = await verify_command(parser.parse_args(arguments), hub.dsn, Console(file=output, width=200))
    print(output.getvalue())
    return status
