"""T2 and T5 on the fast path: `audit verify` reading the log in aligned chunks in worker processes reports exactly
what the sequential reader reports: a clean log, a leaf re-hashed to match (also one holding bytes that look like
the COPY stream's framing), deleted entries, and receipts, true and false. Where the fast path cannot prove the log
whole (an edited leaf, a gap) it gives way, and the sequential reader, in the same snapshot, names each divergence
at its index. The workers' pure-Python hashing reports the same as the compiled helper."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from service.auditlog import merkle, verify_cli
from service.auditlog.events import AuditEvent, EventType
from service.auditlog.log_check import VerifyReport
from service.auditlog.verify_cli import verify_database
from service.auditlog.verify_parallel import FastPathDeclined
from service.receipts import ReceiptFacts, build_signed_receipt
from service.store.audit import AppendedLeaf
from service.terminology import load_code_system
from tests.auditlog.audit_fixtures import T0, append_events, event, sign_checkpoint, superuser
from tests.support.hub import Network

LEVEL = 3  # chunks of 8 entries: a 100-entry log is 13 chunks, the last one partial
FORGED = AuditEvent(EventType.MESSAGE_ACCEPTED, "accepted", "RDE", T0, None, {"payload_sha256": "0" * 64})


async def _log(database: str, network: Network) -> list[AppendedLeaf]:
    """100 entries with checkpoints at sizes inside chunks and on their edges."""
    appended: list[AppendedLeaf] = []
    for size in (5, 16, 37, 64, 100):
        appended += await append_events(database, size - len(appended), first=len(appended))
        await sign_checkpoint(database, network)
    return appended


def _receipt(network: Network, leaf: AppendedLeaf, number: int, *, leaf_hash: bytes | None = None) -> Any:
    facts = ReceiptFacts(
        message_id=event(number).message_id,  # type: ignore[arg-type]
        payload_sha256=str(event(number).details["payload_sha256"]),
        audit_index=leaf.index,
        leaf_hash=leaf_hash or leaf.leaf_hash,
        accepted_at=T0,
        sender_ods="RM1",
        request_header_id="header",
        bundle_identifier="urn:uuid:00000000-0000-0000-0000-000000000001",
    )
    url = load_code_system("handover-event").url
    return json.loads(build_signed_receipt(facts, url, network.private_key("hub")))


async def _both(
    database: str, network: Network, receipts: list[tuple[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> tuple[VerifyReport, VerifyReport, list[str]]:
    """The report with the fast path and without it, and what the fast path did: "read", "not dense", "declined"."""
    used: list[str] = []
    original = verify_cli.read_in_parallel

    async def spying(*args: Any, **kwargs: Any) -> bool:
        try:
            read = await original(*args, **kwargs)
        except FastPathDeclined:
            used.append("declined")
            raise
        used.append("read" if read else "not dense")
        return read

    monkeypatch.setattr(verify_cli, "read_in_parallel", spying)
    parallel = await verify_database(database, network.registry, [], receipts, workers=2, chunk_level=LEVEL)
    sequential = await verify_database(database, network.registry, [], receipts, workers=0)
    return parallel, sequential, used


def _same(parallel: VerifyReport, sequential: VerifyReport) -> None:
    assert parallel.divergences == sequential.divergences
    assert (parallel.tree_size, parallel.root, parallel.checkpoints, parallel.receipts) == (
        sequential.tree_size,
        sequential.root,
        sequential.checkpoints,
        sequential.receipts,
    )


async def test_t5_a_clean_log_and_true_receipts_verify_alike(
    database: str, network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    appended = await _log(database, network)
    receipts = [(f"receipt {n}", _receipt(network, appended[n], n)) for n in (0, 7, 8, 63, 99)]
    parallel, sequential, used = await _both(database, network, receipts, monkeypatch)
    assert used == ["read"]
    assert parallel.ok and parallel.tree_size == 100 and parallel.checkpoints == 5 and parallel.receipts == 5
    _same(parallel, sequential)


async def test_t5_a_false_receipt_is_found_alike(
    database: str, network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    appended = await _log(database, network)
    wrong = _receipt(network, appended[41], 41, leaf_hash=merkle.hash_leaf(b"another leaf"))
    parallel, sequential, used = await _both(database, network, [("receipt 41", wrong)], monkeypatch)
    assert used == ["read"]
    assert parallel.first is not None and (parallel.first.kind, parallel.first.index) == ("receipt", 41)
    _same(parallel, sequential)


@pytest.mark.parametrize(
    ("tamper", "first", "fast_path"),
    [
        ("UPDATE audit_events SET leaf = $1 WHERE seq = 20", ("leaf-hash", 20), "declined"),
        ("UPDATE audit_events SET leaf = $1, leaf_hash = $2 WHERE seq = 50", ("checkpoint-root", 64), "read"),
        ("DELETE FROM audit_events WHERE seq >= 70", ("log-shorter-than-checkpoint", 100), "read"),
        ("UPDATE audit_events SET leaf = leaf || $1, leaf_hash = $2 WHERE seq = 9", ("checkpoint-root", 16), "read"),
    ],
    ids=["edited-leaf", "re-hashed-leaf", "deleted-tail", "copy-framing-in-a-leaf"],
)
async def test_t2_tampering_is_reported_alike_on_the_fast_path(
    database: str,
    network: Network,
    monkeypatch: pytest.MonkeyPatch,
    *,
    tamper: str,
    first: tuple[str, int],
    fast_path: str,
) -> None:
    await _log(database, network)
    async with superuser(database) as conn:
        arguments = (FORGED.leaf(), merkle.hash_leaf(FORGED.leaf()))[: tamper.count("$")]
        if "||" in tamper:  # bytes that look like the COPY stream's own: a row head, a NULL, the trailer
            framing = struct.pack(">hi", 2, 32) + merkle.hash_leaf(b"x") + struct.pack(">i", -1) + b"\xff\xff"
            leaf = await conn.fetchval("SELECT leaf FROM audit_events WHERE seq = 9")
            arguments = (framing, merkle.hash_leaf(leaf + framing))
        await conn.execute(tamper, *arguments)
    parallel, sequential, used = await _both(database, network, [], monkeypatch)
    assert used == [fast_path]
    assert parallel.first is not None and (parallel.first.kind, parallel.first.index) == first
    _same(parallel, sequential)


async def test_t2_a_gap_makes_the_fast_path_decline_and_the_gap_is_named(
    database: str, network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _log(database, network)
    async with superuser(database) as conn:
        await conn.execute("DELETE FROM audit_events WHERE seq = 33")
    parallel, sequential, used = await _both(database, network, [], monkeypatch)
    assert used == ["declined"]
    assert parallel.first is not None and (parallel.first.kind, parallel.first.index) == ("missing-entry", 33)
    _same(parallel, sequential)


async def test_t5_the_pure_python_twins_verify_alike(
    database: str, network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the compiled helper could not be built, the workers hash with the twins and report the same."""
    appended = await _log(database, network)
    monkeypatch.setenv("HANDOVER_TREEHASH", "python")
    receipts = [("receipt 7", _receipt(network, appended[7], 7))]
    parallel, sequential, used = await _both(database, network, receipts, monkeypatch)
    assert used == ["read"]
    assert parallel.ok and parallel.tree_size == 100 and parallel.checkpoints == 5 and parallel.receipts == 1
    _same(parallel, sequential)
