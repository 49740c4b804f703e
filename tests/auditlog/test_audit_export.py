"""`handover audit export DIR`: leaves, checkpoints and FHIR AuditEvents (IHE BALP style), and
`handover audit verify --export DIR` finds the same things there as in the database."""

from __future__ import annotations

import argparse
import base64
import io
import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from fhir.resources.R4B.auditevent import AuditEvent as FhirAuditEvent
from rich.console import Console

from service.auditlog import verify_cli
from service.auditlog.appending import append_event
from service.auditlog.events import AuditEvent, EventType
from service.auditlog.export import (
    CHECKPOINTS,
    FHIR_EVENTS,
    LEAVES,
    MANIFEST,
    add_export_arguments,
    export_command,
    export_log,
)
from service.auditlog.verify_cli import add_verify_arguments, verify_command, verify_export
from tests.auditlog.audit_fixtures import T0, append_events, sign_checkpoint
from tests.support.hub import Network

OTHER_EVENTS = [
    AuditEvent(EventType.MESSAGE_REFUSED, "signature-invalid", "unauthenticated", T0, None, {"request_id": ""}),
    AuditEvent(EventType.MESSAGE_DELIVERED, "delivered", "RGT", T0, uuid.uuid4(), {"channel": "mailbox"}),
    AuditEvent(EventType.PAYLOAD_READ, "read", "jo.governance", T0, uuid.uuid4(), {"reason": "coroner's request"}),
    AuditEvent(EventType.KEY_CHANGED, "changed", "hub", T0, None, {"owner": "RM1", "change": "rotate"}),
    AuditEvent(EventType.STAFF_LOGIN, "logged-in", "jo.governance", T0, None, {"role": "governance"}),
]


async def exported(dsn: str, network: Network, directory: Path) -> None:
    await append_events(dsn, 5)
    conn = await asyncpg.connect(dsn)
    try:
        for event in OTHER_EVENTS:
            async with conn.transaction():
                await append_event(conn, event)
    finally:
        await conn.close()
    await sign_checkpoint(dsn, network)
    conn = await asyncpg.connect(dsn)
    try:
        report = await export_log(conn, directory)
    finally:
        await conn.close()
    assert report.tree_size == 10 and report.checkpoints == 1 and report.unreadable_leaves == 0


async def test_export_writes_leaves_checkpoints_fhir_audit_events_and_a_manifest(
    database: str, network: Network, tmp_path: Path
) -> None:
    await exported(database, network, tmp_path / "out")
    out = tmp_path / "out"
    leaves = [json.loads(line) for line in (out / LEAVES).read_text().splitlines()]
    assert [leaf["index"] for leaf in leaves] == list(range(10))
    assert json.loads(base64.b64decode(leaves[9]["leaf"]))["type"] == "staff-login"
    checkpoints = [json.loads(line) for line in (out / CHECKPOINTS).read_text().splitlines()]
    assert [c["tree_size"] for c in checkpoints] == [10] and checkpoints[0]["note"].split("\n")[1] == "10"
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["tree_size"] == 10 and set(manifest["files"]) == {LEAVES, CHECKPOINTS, FHIR_EVENTS}

    events = [json.loads(line) for line in (out / FHIR_EVENTS).read_text().splitlines()]
    assert len(events) == 10
    for resource in events:
        FhirAuditEvent.model_validate(resource)  # a valid FHIR AuditEvent
    accepted, refused, delivered, read = events[0], events[5], events[6], events[7]
    assert accepted["subtype"][0]["code"] == "operation" and accepted["action"] == "C" and accepted["outcome"] == "0"
    assert accepted["agent"][0]["who"]["identifier"] == {
        "system": "https://fhir.nhs.uk/Id/ods-organization-code",
        "value": "RM1",
    }
    assert refused["outcome"] == "4" and refused["outcomeDesc"] == "signature-invalid"
    assert delivered["action"] == "E"
    assert read["purposeOfEvent"] == [{"text": "coroner's request"}] and read["action"] == "R"
    assert events[8]["type"]["code"] == "110113" and events[9]["type"]["code"] == "110114"
    entry = events[0]["entity"][-1]
    assert entry["what"]["identifier"]["value"] == "0"
    assert entry["detail"][0]["valueBase64Binary"] == leaves[0]["leaf_hash"]
    assert "Testpatient" not in (out / FHIR_EVENTS).read_text()


async def test_verify_checks_an_export_and_finds_an_edited_leaf_there(
    database: str, network: Network, tmp_path: Path
) -> None:
    await exported(database, network, tmp_path / "out")
    report = verify_export(tmp_path / "out", network.registry, [], [])
    assert report.ok and report.tree_size == 10 and report.checkpoints == 1

    path = tmp_path / "out" / LEAVES
    lines = path.read_text().splitlines()
    row = json.loads(lines[3])
    row["leaf"] = base64.b64encode(base64.b64decode(row["leaf"]).replace(b"RM1", b"RDE")).decode()
    lines[3] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")
    report = verify_export(tmp_path / "out", network.registry, [], [])
    assert report.first is not None and (report.first.kind, report.first.index) == ("leaf-hash", 3)

    path.write_text("\n".join(lines[:7]) + "\n")
    report = verify_export(tmp_path / "out", network.registry, [], [])
    assert {d.kind for d in report.divergences} >= {"leaf-hash", "log-shorter-than-checkpoint"}


async def test_the_commands_exit_0_only_if_everything_holds(database: str, network: Network, tmp_path: Path) -> None:
    await append_events(database, 3)
    await sign_checkpoint(database, network)
    net = f"--network={network.network_path}"

    export_parser = argparse.ArgumentParser()
    add_export_arguments(export_parser)
    console = Console(file=io.StringIO(), width=200)
    assert await export_command(export_parser.parse_args([str(tmp_path / "x")]), database, console) == 0
    assert await export_command(export_parser.parse_args([str(tmp_path / "x")]), database, console) == 2  # not empty

    verify_parser = argparse.ArgumentParser()
    add_verify_arguments(verify_parser)
    for source in ([], [f"--export={tmp_path / 'x'}"]):
        output = io.StringIO()
        args = verify_parser.parse_args([*source, "--no-progress", net])
        assert await verify_command(args, database, Console(file=output, width=200)) == 0, output.getvalue()
        assert "audit log verified" in output.getvalue()

    (tmp_path / "bogus.txt").write_text("not a checkpoint\n")
    output = io.StringIO()
    args = verify_parser.parse_args([f"--checkpoint={tmp_path / 'bogus.txt'}", "--no-progress", net])
    assert await verify_command(args, database, Console(file=output, width=200)) == 1
    assert "FIRST DIVERGENCE trusted-checkpoint" in output.getvalue()
    args = verify_parser.parse_args([f"--receipt={tmp_path / 'missing.json'}", net])
    assert await verify_command(args, database, Console(file=io.StringIO())) == 2


@pytest.mark.parametrize("count", [0, 1])
async def test_small_logs_verify(database: str, network: Network, count: int) -> None:
    await append_events(database, count)
    await sign_checkpoint(database, network)
    parser = argparse.ArgumentParser()
    add_verify_arguments(parser)
    args = parser.parse_args(["--no-progress", f"--network={network.network_path}"])
    assert await verify_command(args, database, Console(file=io.StringIO())) == 0


async def test_workers_option_reaches_the_reader(
    database: str, network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--workers N` sets the fast path's processes; 0 means the sequential reader alone; negative is refused."""
    await append_events(database, 3)
    asked: list[int] = []

    async def spying(*args: Any, workers: int, **kwargs: Any) -> bool:
        asked.append(workers)
        return False  # as for any log this small: the sequential reader goes on

    monkeypatch.setattr(verify_cli, "read_in_parallel", spying)
    parser = argparse.ArgumentParser()
    add_verify_arguments(parser)
    for option in ("--workers=3", "--workers=0"):
        args = parser.parse_args([option, "--no-progress", f"--network={network.network_path}"])
        assert await verify_command(args, database, Console(file=io.StringIO())) == 0
    assert asked == [3]
    with pytest.raises(SystemExit):
        parser.parse_args(["--workers=-1"])
