"""`handover verify FILE`: check a signed message Bundle or a hub receipt offline, against the network registry.

A file verifies when it is strict JSON, a FHIR message Bundle, its ``Bundle.signature`` verifies with a key
from the registry (a current participant's, a former participant's, or the hub's), that key was not revoked
before the signature was made, and the key's owner is the message's sender: ``MessageHeader.sender`` and
``Bundle.signature.who`` for a trust, or no sender at all for the hub's own receipts. The report names the
key, algorithm, signer and the SHA-256 of the canonical payload, and, for a hub receipt, its parameters.
Nothing is sent anywhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import rfc8785
from rich.table import Table

from service.errors import HandoverError
from service.identity.registry import HUB_OWNER, Registry
from service.identity.signing import PublicKeyEntry, VerifiedSignature, canonical_bytes, verify_bundle_signature
from service.receipts import receipt_parameters
from service.strictjson import parse_strict_json
from service.terminology import ODS_SYSTEM


@dataclass(frozen=True)
class VerifyReport:
    """What `verify_file` found. `valid` is True only when `problems` is empty; `notes` never invalidate."""

    path: Path
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    error_code: str | None = None
    kid: str | None = None
    alg: str | None = None
    signer: str | None = None
    signer_name: str | None = None
    key_status: str | None = None
    signed_at: datetime | None = None
    sha256: str | None = None
    event: str | None = None
    sender: str | None = None
    recipient: str | None = None
    bundle_identifier: str | None = None
    receipt: Mapping[str, Any] | None = field(default=None, compare=False)

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def is_receipt(self) -> bool:
        return self.receipt is not None


def verify_file(path: Path, registry: Registry) -> VerifyReport:
    """Verify the signed Bundle in `path` against `registry`; every failure is reported, none raised."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        return VerifyReport(path, problems=(f"cannot read the file ({err.strerror or err.__class__.__name__})",))
    try:
        doc = parse_strict_json(raw)
    except HandoverError as err:
        return VerifyReport(path, problems=(err.text,), error_code=err.code.value)

    problems: list[str] = []
    notes: list[str] = []
    header = _message_header(doc)
    if header is None:
        problems.append("not a FHIR message Bundle: the first entry must be its MessageHeader")
        header = {}
    facts: dict[str, Any] = {
        "event": _str(_get(header, "eventCoding", "code")),
        "sender": _ods(header.get("sender")),
        "recipient": _ods(_first(header.get("destination"), "receiver")),
        "bundle_identifier": _str(_get(doc, "identifier", "value")),
    }
    try:
        facts["sha256"] = hashlib.sha256(canonical_bytes(doc)).hexdigest()
    except rfc8785.CanonicalizationError:
        problems.append("the Bundle holds a value RFC 8785 cannot represent")

    try:
        verified = verify_bundle_signature(doc, _all_keys(registry).get)
    except HandoverError as err:
        return VerifyReport(path, (*problems, err.text), tuple(notes), err.code.value, **facts)

    key = verified.key
    error_code = (
        None if _signer_owns_sender(verified, facts["sender"], registry, problems, notes) else "sender-mismatch"
    )
    signed_at = verified.signed_at or _timestamp(doc)
    if key is not None and key.is_revoked_at(signed_at):
        problems.append("the signing key was revoked before this message was signed")
        error_code = error_code or "key-revoked"
    elif key is not None and key.status != "active":
        notes.append(f"the signing key is now {key.status}; it was valid when this was signed")

    receipt = _receipt(doc) if verified.owner_ods == HUB_OWNER else None
    return VerifyReport(
        path,
        tuple(problems),
        tuple(notes),
        error_code,
        kid=verified.kid,
        alg=verified.alg,
        signer=verified.owner_ods,
        signer_name=_owner_name(registry, verified.owner_ods),
        key_status=key.status if key is not None else None,
        signed_at=verified.signed_at,
        receipt=receipt,
        **facts,
    )


def render_report(report: VerifyReport) -> Table:
    """The report as a two-column rich table, headed VALID or INVALID."""
    verdict = "[bold green]VALID[/]" if report.valid else "[bold red]INVALID[/]"
    table = Table(title=f"{report.path.name}: {verdict}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    signer = report.signer
    if signer is not None and report.signer_name:
        signer = f"{signer} ({report.signer_name})"
    rows: list[tuple[str, str | None]] = [
        ("kid", report.kid),
        ("alg", report.alg),
        ("signer", signer),
        ("key status", report.key_status),
        ("signed at", report.signed_at.isoformat() if report.signed_at else None),
        ("sha256", report.sha256),
        ("event", report.event),
        ("sender", report.sender),
        ("recipient", report.recipient),
        ("bundle identifier", report.bundle_identifier),
        ("error code", report.error_code),
    ]
    if report.receipt is not None:
        rows.extend((f"receipt {name}", str(value)) for name, value in report.receipt.items())
    for name, value in rows:
        if value is not None:
            table.add_row(name, value)
    for problem in report.problems:
        table.add_row("[red]problem[/]", problem)
    for note in report.notes:
        table.add_row("[yellow]note[/]", note)
    return table


def _all_keys(registry: Registry) -> Mapping[str, PublicKeyEntry]:
    """Every key the registry lists, by kid: the hub's and current and former participants'."""
    keys = {entry.kid: entry for entry in registry.hub_keys}
    for participant in registry.participants.values():
        keys.update((entry.kid, entry) for entry in participant.keys)
    return keys


def _signer_owns_sender(
    verified: VerifiedSignature, sender: str | None, registry: Registry, problems: list[str], notes: list[str]
) -> bool:
    """Whether the key's owner is the sender (the hub only for sender-less receipts); adds what is wrong."""
    owner = verified.owner_ods
    found = len(problems)
    if owner == HUB_OWNER:
        if sender is not None:
            problems.append(f"signed with a hub key, but MessageHeader.sender names {sender}: hub keys sign receipts")
        return len(problems) == found
    if sender != owner:
        problems.append(f"the signing key belongs to {owner}, but MessageHeader.sender is {sender or 'missing'}")
    if verified.who_ods != owner:
        problems.append(f"Bundle.signature.who must name {owner}, the owner of the signing key")
    if registry.former(owner) is not None:
        notes.append(f"{owner} is a former participant: no longer in the network")
    return len(problems) == found


def _owner_name(registry: Registry, owner: str) -> str | None:
    if owner == HUB_OWNER:
        return registry.hub_name
    participant = registry.participants.get(owner)
    return participant.name if participant is not None else None


def _receipt(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Parameters of a hub receipt (its second entry), or None when the Bundle is not one."""
    if _get(_first(doc.get("entry"), "resource", index=1), "resourceType") != "Parameters":
        return None
    try:
        return receipt_parameters(doc)
    except (KeyError, IndexError, TypeError, AttributeError, StopIteration):
        return None


def _message_header(doc: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if doc.get("resourceType") != "Bundle" or doc.get("type") != "message":
        return None
    resource = _first(doc.get("entry"), "resource")
    if isinstance(resource, Mapping) and resource.get("resourceType") == "MessageHeader":
        return resource
    return None


def _timestamp(doc: Mapping[str, Any]) -> datetime | None:
    value = doc.get("timestamp")
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def _first(items: object, name: str, *, index: int = 0) -> object:
    """`items[index][name]` when `items` is a list of objects long enough, else None."""
    if isinstance(items, list) and len(items) > index and isinstance(items[index], Mapping):
        return items[index].get(name)
    return None


def _get(value: object, *names: str) -> object:
    for name in names:
        value = value.get(name) if isinstance(value, Mapping) else None
    return value


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _ods(reference: object) -> str | None:
    if _get(reference, "identifier", "system") != ODS_SYSTEM:
        return None
    return _str(_get(reference, "identifier", "value"))
