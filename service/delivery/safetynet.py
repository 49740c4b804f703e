"""The safety net: find answers that are overdue and alert the party waiting for them, once each.

A sweep leases overdue deadlines (several hub processes may sweep: SKIP LOCKED), and for each one stores a
hub-signed alert message for the waiting party's mailbox, notes it on the episode's timeline, marks the
deadline alerted and audits it, all in one transaction. It also watches the cancer pathway clocks
(service/delivery/clockwatch.py): `sweep_clocks` alerts a day-38 / day-62 breach or an approaching day-62 target.
"""

from __future__ import annotations

import logging
import uuid

import asyncpg

from service.auditlog import appending
from service.auditlog.events import AuditEvent, EventType
from service.background import run_forever
from service.clock import Clock, utc_now
from service.delivery.clockwatch import DEFAULT_WARNING_DAYS, ClockWatch
from service.delivery.hubmail import HubMail
from service.episodes.alerts import build_alert
from service.store import db
from service.store import episodes as store

log = logging.getLogger("handover.safetynet")
BATCH = 50


class SafetyNet:
    def __init__(
        self,
        pool: asyncpg.Pool,
        mail: HubMail,
        clock: Clock = utc_now,
        *,
        clock_warning_days: int = DEFAULT_WARNING_DAYS,
    ) -> None:
        self._mail = mail
        self._clocks = ClockWatch(pool, mail, warning_days=clock_warning_days)
        self._pool = pool
        self._clock = clock

    async def sweep(self) -> int:
        """Alert every overdue answer not yet alerted; returns how many alerts were sent."""
        now = self._clock()
        async with db.transaction(self._pool) as conn:
            due = await store.lease_overdue(conn, now, limit=BATCH)  # every row lock the sweep needs, taken first
            events: list[AuditEvent] = []
            for deadline in due:
                bundle, raw = build_alert(
                    event_system=self._mail.event_system,
                    kind=deadline.kind,
                    waiting_ods=deadline.waiting,
                    owed_by=deadline.owed_by,
                    awaited_header_id=deadline.awaited_header_id,
                    due_at=deadline.due_at,
                    now=now,
                    hub_private_jwk=self._mail.signing_jwk(),
                )
                alert_id = uuid.uuid4()
                await self._mail.post_episode_alert(
                    conn,
                    episode_id=deadline.episode_id,
                    kind=f"{deadline.kind}-overdue",
                    message_id=alert_id,
                    recipient_ods=deadline.waiting,
                    bundle=bundle,
                    raw=raw,
                    at=now,
                )
                await store.mark_alerted(conn, deadline.id, alert_id, now)
                events.append(
                    AuditEvent(
                        EventType.ALERT_SENT,
                        f"{deadline.kind}-overdue",
                        "hub",
                        now,
                        message_id=alert_id,
                        details={
                            "awaited_message": str(deadline.message_id),
                            "waiting": deadline.waiting,
                            "owed_by": deadline.owed_by,
                        },
                    )
                )
            await appending.append_events(conn, events)  # last: it holds the sequencer's lock until COMMIT
        if due:
            log.warning("overdue answers alerted", extra={"count": len(due)})
        return len(due)

    async def sweep_clocks(self) -> int:
        """Alert every cancer pathway clock breach (or approaching day-62 target) not yet alerted; returns how many
        alert messages were sent."""
        sent = await self._clocks.sweep(self._clock())
        if sent:
            log.warning("cancer pathway clock alerts sent", extra={"count": sent})
        return sent

    async def run(self, interval_seconds: float) -> None:
        """Sweep until cancelled; any fault (a store outage, a deadlock) is logged, counted and retried after a
        back-off (service/background.py): one fault never ends the safety net."""
        await run_forever("safety-net", self.sweep_all, interval=interval_seconds)

    async def sweep_all(self) -> int:
        """One full pass: every overdue answer and clock alert due now; how many alerts were sent."""
        sent = 0
        while (found := await self.sweep()) == BATCH:
            sent += found
        sent += found
        while (found := await self.sweep_clocks()) > 0:  # a full batch may leave more
            sent += found
        return sent
