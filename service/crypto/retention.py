"""Retention of payloads: once every delivery of a message has ended (delivered or dead-lettered) longer ago than
the retention for its type, its data key and ciphertext are deleted (crypto-shred). The message's metadata row,
its delivery rows and its audit entries stay; an audit event records each shredding. A payload nobody read (no
delivery succeeded and no acknowledgement came, e.g. dead-lettered while the recipient was down) is never
shredded: it is kept, and an audit event says so once (outcome `kept-unread`).

Policy (``HANDOVER_PAYLOAD_RETENTION``): one duration for every type, or comma-separated ``type=duration`` rules
with ``*`` for the rest, a duration being a whole number and a unit ``d``, ``h``, ``m`` or ``s``::

    HANDOVER_PAYLOAD_RETENTION=30d                                   # default: 30 days (as MESH)
    HANDOVER_PAYLOAD_RETENTION=referral=90d,discharge-summary=365d,*=30d
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from service.auditlog import appending
from service.auditlog.events import AuditEvent, EventType
from service.clock import Clock, utc_now
from service.store import datakeys, db

log = logging.getLogger("handover.retention")
DEFAULT_RETENTION = timedelta(days=30)
_DURATION = re.compile(r"([0-9]{1,6})([dhms])", re.ASCII)
_EVENT = re.compile(r"[a-z][a-z0-9-]{0,63}", re.ASCII)
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


@dataclass(frozen=True)
class RetentionPolicy:
    """How long a payload is kept after its last delivery ended: `by_event` per message type, else `default`."""

    default: timedelta = DEFAULT_RETENTION
    by_event: Mapping[str, timedelta] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> RetentionPolicy:
        """Parse the ``HANDOVER_PAYLOAD_RETENTION`` format; ValueError names what is wrong."""
        text = text.strip()
        if "=" not in text:
            return cls(_duration(text))
        default, by_event = DEFAULT_RETENTION, {}
        for rule in text.split(","):
            name, sep, value = (part.strip() for part in rule.partition("="))
            if not sep:
                raise ValueError(f"retention rule {rule.strip()!r} must be type=duration")
            if name == "*":
                default = _duration(value)
            elif _EVENT.fullmatch(name) and name not in by_event:
                by_event[name] = _duration(value)
            else:
                raise ValueError(f"retention rule names {name!r}: a message type (once each) or *")
        return cls(default, by_event)

    def retention_for(self, event: str) -> timedelta:
        return self.by_event.get(event, self.default)


def _duration(text: str) -> timedelta:
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"retention {text!r} must be a whole number and a unit d, h, m or s (e.g. 30d)")
    value = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if value <= timedelta(0):
        raise ValueError("a retention must be positive")
    return value


class PayloadRetention:
    """Shreds payloads past their retention. Arguments: the pool, the policy, a clock. Scheduled by housekeeping
    (service/housekeeping/duties.py), one process at a time."""

    def __init__(self, pool: asyncpg.Pool, policy: RetentionPolicy, *, clock: Clock = utc_now) -> None:
        self._pool = pool
        self._policy = policy
        self._clock = clock

    async def shred_expired(self, *, batch: int = 200) -> int:
        """Shred every payload now past its retention that was read; returns how many."""
        rules: list[tuple[str | None, timedelta]] = [*self._policy.by_event.items(), (None, self._policy.default)]
        total = 0
        for event, keep in rules:
            total += await self._in_batches(datakeys.shred_finished_payloads, _shredded, event, keep, batch)
            kept = await self._in_batches(datakeys.keep_unread_payloads, _kept_unread, event, keep, batch)
            if kept:
                log.warning("unread payloads kept past their retention", extra={"count": kept})
        if total:
            log.info("payloads shredded at the end of retention", extra={"count": total})
        return total

    async def _in_batches(
        self,
        take: Callable[..., Awaitable[list[datakeys.ShreddedPayload]]],
        audit_of: Callable[[datakeys.ShreddedPayload, datetime], AuditEvent],
        event: str | None,
        keep: timedelta,
        batch: int,
    ) -> int:
        """`take` payloads past `keep` in batches, each batch audited in its own transaction; returns how many."""
        count = 0
        while True:
            now = self._clock()
            async with db.transaction(self._pool) as conn:
                found = await take(
                    conn,
                    event=event,
                    other_than=list(self._policy.by_event),
                    finished_before=now - keep,
                    now=now,
                    limit=batch,
                )
                # One append for the batch, last: the audit sequencer's lock is held from it to COMMIT only.
                await appending.append_events(conn, [audit_of(item, now) for item in found])
            count += len(found)
            if len(found) < batch:
                return count


def _shredded(item: datakeys.ShreddedPayload, now: datetime) -> AuditEvent:
    return AuditEvent(
        type=EventType.PAYLOAD_SHREDDED,
        outcome="shredded",
        actor="hub",
        at=now,
        message_id=item.message_id,
        details={
            "owner": "data-key",
            "change": "shred",
            "status": "destroyed",
            "event": item.event,
            "sender": item.sender_ods,
            "recipient": item.recipient_ods,
            "read": item.read_as,
        },
    )


def _kept_unread(item: datakeys.ShreddedPayload, now: datetime) -> AuditEvent:
    """Retention kept a payload nobody read (HAZ-12): said once, in the audit log."""
    return AuditEvent(
        type=EventType.KEY_CHANGED,
        outcome="kept-unread",
        actor="hub",
        at=now,
        message_id=item.message_id,
        details={
            "owner": "data-key",
            "change": "keep",
            "status": "kept",
            "reason": "never delivered or acknowledged",
            "event": item.event,
            "sender": item.sender_ods,
            "recipient": item.recipient_ods,
        },
    )
