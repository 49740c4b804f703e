"""`handover audit export DIR`: the audit log as files, for the offline verifier and for SIEM/records systems.

One consistent snapshot (a REPEATABLE READ, read-only transaction) is written to an empty or new directory:

* ``leaves.ndjson``               one line per entry: ``{"index", "leaf", "leaf_hash"}`` (base64), index order;
* ``checkpoints.ndjson``          one line per signed checkpoint: ``{"tree_size", "root_hash", "signed_at",
                                  "key_id", "note"}``, smallest first;
* ``audit-events.fhir.ndjson``    one FHIR R4 AuditEvent per entry in the IHE BALP style (type/subtype/action,
                                  requesting and hub agents, the hub as observer, the message and the log
                                  entry as entities); entries whose leaf is not readable JSON are counted in
                                  the manifest, not converted;
* ``manifest.json``               origin, tree size, counts, export time and each file's SHA-256 (written last).

`handover audit verify --export DIR` checks such a directory exactly as it checks a database.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import asyncpg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress

from service.hubmessages import HUB_IDENTIFIER_SYSTEM
from service.store import audit_reads
from service.store import checkpoints as checkpoint_store
from service.terminology import ODS_SYSTEM

LEAVES, CHECKPOINTS, FHIR_EVENTS, MANIFEST = (
    "leaves.ndjson",
    "checkpoints.ndjson",
    "audit-events.fhir.ndjson",
    "manifest.json",
)
ACTOR_SYSTEM = "https://handover.nhs.example/fhir/Id/actor"
EVENT_TYPE_SYSTEM = "https://handover.nhs.example/fhir/CodeSystem/audit-event-type"
_DCM = "http://dicom.nema.org/resources/ontology/DCM"
_REST = {
    "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
    "code": "rest",
    "display": "RESTful Operation",
}
_INTERACTION = "http://hl7.org/fhir/restful-interaction"
_ODS = re.compile(r"[A-Z0-9]{3,5}")
_SUCCESS = frozenset({"accepted", "delivered", "fetched", "read", "ok", "success", "changed", "logged-in", "shredded"})
# event type -> (AuditEvent.type, restful-interaction subtype or None, action)
_KINDS: dict[str, tuple[dict[str, str], str | None, str]] = {
    "message-accepted": (_REST, "operation", "C"),
    "message-refused": (_REST, "operation", "C"),
    "message-fetched": (_REST, "read", "R"),
    "message-delivered": (_REST, "operation", "E"),
    # The delivery the hub gave up on: the same operation as a delivery, outcome "dead-letter" (8, serious failure).
    "message-dead-lettered": (_REST, "operation", "E"),
    # A crypto-shred destroys the payload's data key: a delete of the stored payload (the metadata stays).
    "payload-shredded": (_REST, "delete", "D"),
    "payload-read": (_REST, "read", "R"),
    "key-changed": ({"system": _DCM, "code": "110113", "display": "Security Alert"}, None, "U"),
    "staff-login": ({"system": _DCM, "code": "110114", "display": "User Authentication"}, None, "E"),
}
_OTHER = ({"system": _DCM, "code": "110100", "display": "Application Activity"}, None, "E")


@dataclass(frozen=True)
class ExportReport:
    directory: Path
    origin: str
    tree_size: int
    checkpoints: int
    unreadable_leaves: int


async def export_log(
    conn: asyncpg.Connection, directory: Path, *, progress: Callable[[int], None] | None = None
) -> ExportReport:
    """Write the log to `directory` (created; must be empty if it exists). `progress(n)` after each n entries.

    Raises FileExistsError for a non-empty directory.
    """
    _prepare(directory)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        checkpoints = await checkpoint_store.all_checkpoints(conn)
        origin = checkpoints[-1].note.split("\n", 1)[0] if checkpoints else "handover"
        _write_checkpoints(directory / CHECKPOINTS, checkpoints)
        size, unreadable = await _write_leaves(conn, directory, origin, progress)
    report = ExportReport(directory, origin, size, len(checkpoints), unreadable)
    _write_manifest(report)
    return report


def _prepare(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise FileExistsError(f"{directory} is not empty")


def _write_checkpoints(path: Path, checkpoints: list[checkpoint_store.StoredCheckpoint]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for cp in checkpoints:
            row = {
                "tree_size": cp.tree_size,
                "root_hash": _b64(cp.root_hash),
                "signed_at": cp.signed_at.isoformat(),
                "key_id": cp.key_id,
                "note": cp.note,
            }
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def _write_manifest(report: ExportReport) -> None:
    manifest = {
        "origin": report.origin,
        "tree_size": report.tree_size,
        "checkpoints": report.checkpoints,
        "unreadable_leaves": report.unreadable_leaves,
        "exported_at": datetime.now(UTC).isoformat(),
        "files": {name: _file_sha256(report.directory / name) for name in (LEAVES, CHECKPOINTS, FHIR_EVENTS)},
    }
    (report.directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


async def _write_leaves(
    conn: asyncpg.Connection, directory: Path, origin: str, progress: Callable[[int], None] | None
) -> tuple[int, int]:
    count = unreadable = 0
    with (
        (directory / LEAVES).open("w", encoding="utf-8") as leaves,
        (directory / FHIR_EVENTS).open("w", encoding="utf-8") as events,
    ):
        async for entry in audit_reads.stream_leaves(conn):
            leaves.write(
                f'{{"index":{entry.index},"leaf":"{_b64(entry.leaf)}","leaf_hash":"{_b64(entry.leaf_hash)}"}}\n'
            )
            unreadable += not _write_event(events, entry, origin)
            count += 1
            if progress is not None and count % 10_000 == 0:
                progress(10_000)
    if progress is not None:
        progress(count % 10_000)
    return count, unreadable


def _write_event(out: TextIO, entry: audit_reads.StoredLeaf, origin: str) -> bool:
    try:
        event = json.loads(entry.leaf)
        resource = fhir_audit_event(entry.index, event, entry.leaf_hash, origin)
    except (ValueError, KeyError, TypeError, AttributeError):
        return False
    out.write(json.dumps(resource, ensure_ascii=False, separators=(",", ":")) + "\n")
    return True


def fhir_audit_event(index: int, event: dict[str, Any], leaf_hash: bytes, origin: str) -> dict[str, Any]:
    """The FHIR R4 AuditEvent (IHE BALP style) for log entry `index` whose leaf is `event`.

    Raises KeyError/TypeError/ValueError when `event` lacks the fields every leaf has.
    """
    kind, interaction, action = _KINDS.get(event["type"], _OTHER)
    outcome = str(event["outcome"])
    details: dict[str, str] = dict(event.get("details") or {})
    subtype = [{"system": EVENT_TYPE_SYSTEM, "code": str(event["type"])}]
    if interaction is not None:
        subtype.insert(0, {"system": _INTERACTION, "code": interaction})
    hub = {"identifier": {"system": HUB_IDENTIFIER_SYSTEM, "value": "hub"}, "display": "Handover hub"}
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": f"audit-{index}",
        "type": kind,
        "subtype": subtype,
        "action": action,
        "recorded": datetime.fromisoformat(str(event["at"])).isoformat(),
        "outcome": "0" if outcome in _SUCCESS else "4" if event["type"] == "message-refused" else "8",
        "outcomeDesc": outcome,
        "agent": [
            {"type": _concept(_DCM, "110153", "Source Role ID"), "who": _actor(str(event["actor"])), "requestor": True},
            {"type": _concept(_DCM, "110152", "Destination Role ID"), "who": hub, "requestor": False},
        ],
        "source": {
            "site": origin,
            "observer": hub,
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}],
        },
        "entity": [
            {
                "what": {"identifier": {"system": f"https://{origin}", "value": str(index)}},
                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"},
                "description": "audit log entry (RFC 9162 leaf)",
                "detail": [{"type": "leaf-hash", "valueBase64Binary": _b64(leaf_hash)}],
            }
        ],
    }
    if "reason" in details:
        resource["purposeOfEvent"] = [{"text": details["reason"]}]
    message = {
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"},
        "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "4"},
        "detail": [{"type": key, "valueString": value} for key, value in sorted(details.items()) if value],
    }
    if event.get("message_id"):
        message["what"] = {"identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{event['message_id']}"}}
    if "what" in message or message["detail"]:
        resource["entity"].insert(0, message)
    return resource


def _actor(actor: str) -> dict[str, Any]:
    system = ODS_SYSTEM if _ODS.fullmatch(actor) else ACTOR_SYSTEM
    return {"identifier": {"system": system, "value": actor}}


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}]}


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, help="where to write (created; must be empty)")
    parser.add_argument("--database-url", default=None, help="PostgreSQL DSN (default: HANDOVER_DATABASE_URL)")


async def export_command(args: argparse.Namespace, dsn: str, console: Console) -> int:
    """Run `handover audit export DIR` against `dsn`; print what was written; exit code."""
    conn = await asyncpg.connect(dsn)
    try:
        with Progress(BarColumn(), MofNCompleteColumn(), console=console, transient=True) as progress:
            task = progress.add_task("exporting", total=await audit_reads.log_size(conn))
            report = await export_log(conn, args.directory, progress=lambda n: progress.advance(task, n))
    except FileExistsError as err:
        console.print(f"[red]{err}[/]")
        return 2
    finally:
        await conn.close()
    console.print(
        f"exported {report.tree_size} entries, {report.checkpoints} checkpoint(s) of {report.origin} to "
        f"{report.directory} ({report.unreadable_leaves} leaves not convertible to FHIR)"
    )
    return 0
