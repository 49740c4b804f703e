"""Writing the CWT and COSD extracts (`handover export cwt|cosd`): one CSV row per cancer pathway with its clock
start, IPT received date or treatment date in the period.

Pseudonymised by default: the patient appears only as the hub's keyed pseudonym of the NHS number. An
identifiable extract (NHS number, local patient identifier, date of birth) is for governance staff with a stated
reason, and every referral read for it is audited as a payload read (actor, reason, role, extract) in the same
transaction as the reads, committed before a row is written: no identity leaves the hub unrecorded.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TextIO
from uuid import UUID

import asyncpg

from service.auditlog.events import AuditEvent, EventType
from service.clock import Clock
from service.crypto.vault import PayloadShreddedError, PayloadUnreadableError, PayloadVault
from service.episodes.cwt_allocation import allocate
from service.episodes.cwt_extract_columns import ExtractPathway, NameOf, cells, cosd_columns, cwt_columns
from service.episodes.cwt_referral_items import ReferralItems, referral_items
from service.episodes.cwt_report import pathway_of
from service.errors import Code, HandoverError
from service.governance import MAX_REASON, MIN_REASON
from service.staff import StaffIdentity, StaffRole
from service.store import audit, db, messages
from service.store.cwt_reads import CwtPathwayRow, pathways_in_period

EXTRACTS = ("cwt", "cosd")
Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class ExtractRequest:
    """Which extract ("cwt" or "cosd"), for which period (both dates inclusive), identifiable for whom (None:
    pseudonymised)."""

    kind: str
    start: date
    end: date
    identifiable: IdentifiableRequest | None = None

    def __post_init__(self) -> None:
        if self.kind not in EXTRACTS:
            raise ValueError(f"no such extract: {self.kind}")


@dataclass(frozen=True)
class IdentifiableRequest:
    """Who asked for an identifiable extract and why."""

    reader: StaffIdentity
    reason: str


def checked_request(reader: StaffIdentity, reason: str) -> IdentifiableRequest:
    """The request if `reader` is governance staff and `reason` is 10-500 characters on one line; else
    HandoverError (403 `forbidden`, 400 `bad-header`)."""
    if reader.role is not StaffRole.GOVERNANCE:
        raise HandoverError(Code.FORBIDDEN, "an identifiable extract is for governance staff only")
    reason = reason.strip()
    if not MIN_REASON <= len(reason) <= MAX_REASON or any(ord(c) < 32 for c in reason):
        raise HandoverError(
            Code.BAD_HEADER,
            f"state why you need patient identity in the reason ({MIN_REASON}-{MAX_REASON} characters, one line);"
            " it is kept in the audit log",
        )
    return IdentifiableRequest(reader, reason)


async def write_extract(
    pool: asyncpg.Pool,
    vault: PayloadVault,
    request: ExtractRequest,
    out: TextIO,
    *,
    name_of: NameOf,
    clock: Clock,
    progress: Progress | None = None,
) -> int:
    """Write the extract `request` asks for to `out` as CSV; returns the rows written. HandoverError(UNAVAILABLE)
    if the key-encryption key cannot be used (nothing is written)."""
    pathways = await _read_pathways(pool, vault, request, clock=clock, progress=progress)
    identifiable = request.identifiable is not None
    columns = (cwt_columns if request.kind == "cwt" else cosd_columns)(identifiable=identifiable, name_of=name_of)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([header for header, _ in columns])
    for pathway in pathways:
        writer.writerow(cells(columns, pathway))
    return len(pathways)


async def _read_pathways(
    pool: asyncpg.Pool, vault: PayloadVault, request: ExtractRequest, *, clock: Clock, progress: Progress | None
) -> list[ExtractPathway]:
    """Each pathway with its allocation and its referral's items; for an identifiable extract, the payload-read
    events of every referral opened, appended last in the same transaction."""
    identifiable = request.identifiable
    async with db.transaction(pool) as conn:
        rows = await pathways_in_period(conn, request.start, request.end)
        read: list[ExtractPathway] = []
        events: list[AuditEvent] = []
        for done, row in enumerate(rows, 1):
            items = await _referral_items(conn, vault, row)
            if identifiable is not None and items is not None and row.referral_message_id is not None:
                events.append(_read_event(identifiable, request.kind, row.referral_message_id, clock))
            read.append(ExtractPathway(row, allocate(pathway_of(row)), items or ReferralItems()))
            if progress is not None:
                progress(done, len(rows))
        await audit.append_events(conn, events)
    if identifiable is None:  # the identity a pseudonymised extract read never leaves this function
        read = [ExtractPathway(p.row, p.allocation, p.items.without_identity()) for p in read]
    return read


async def _referral_items(conn: asyncpg.Connection, vault: PayloadVault, row: CwtPathwayRow) -> ReferralItems | None:
    """The referral's items, or None when there is no referral or its payload is gone (shredded, unreadable)."""
    if row.referral_message_id is None:
        return None
    stored = await messages.fetch_payload_for_governance(conn, row.referral_message_id)
    if stored is None:
        return None
    try:
        payload = await vault.open(stored)
    except (PayloadShreddedError, PayloadUnreadableError):
        return None
    try:
        return referral_items(json.loads(payload))
    except ValueError:
        return None


def _read_event(request: IdentifiableRequest, kind: str, message_id: UUID, clock: Clock) -> AuditEvent:
    return AuditEvent(
        EventType.PAYLOAD_READ,
        "read",
        request.reader.user,
        clock(),
        message_id=message_id,
        details={"reason": request.reason, "role": request.reader.role.value, "purpose": f"{kind}-extract"},
    )
