"""Delivering a dead letter again, as ops staff ask from the deliveries page: the delivery goes back to its
queue exactly once (a second request, even a simultaneous one, changes nothing), with a fresh delivery window,
and the request is an audit event in the same transaction. If it dies again, no second non-delivery report is
sent: the sender was told once (see nondelivery.py).
"""

from __future__ import annotations

import asyncpg

from service.auditlog import appending
from service.auditlog.events import AuditEvent, EventType
from service.clock import Clock, utc_now
from service.errors import Code, HandoverError
from service.store import db, redeliveries
from service.store.redeliveries import Requeued


async def deliver_again(pool: asyncpg.Pool, delivery_id: int, requested_by: str, clock: Clock = utc_now) -> Requeued:
    """Re-queue dead letter `delivery_id` for `requested_by` (a staff user id), audited. HandoverError
    INVALID_TRANSITION if it is not a dead letter or has been re-queued before."""
    now = clock()
    async with db.transaction(pool) as conn:
        requeued = await redeliveries.requeue_dead_letter(conn, delivery_id, requested_by=requested_by, now=now)
        if requeued is None:
            raise HandoverError(
                Code.INVALID_TRANSITION, "This message is not a dead letter, or it has already been delivered again"
            )
        details = {"recipient": requeued.recipient_ods, "delivery_id": str(delivery_id)}
        if requeued.previous_error:
            details["previous_error"] = requeued.previous_error
        await appending.append_event(
            conn,
            AuditEvent(EventType.DELIVERY_REQUEUED, "requeued", requested_by, now, requeued.message_id, details),
        )
    return requeued
