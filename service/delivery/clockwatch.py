"""The safety net's watch on the cancer pathway clocks: a day-38 or day-62 breach (a treatment date recorded after
day 62 included), or a day-62 target within the warning period (`HANDOVER_CLOCK_WARNING_DAYS`) with treatment not
started, is alerted once each to both the referring trust and the centre, as a hub-signed alert like the overdue
answers' (service/episodes/alerts.py). What a breach is: service/store/pathway_breaches.py (clocks.py mirrors it);
today is the Europe/London date.

Each alert is stored for the party's mailbox, noted on the episode's timeline, recorded (so it is sent once)
and audited in one transaction.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

import asyncpg

from service.auditlog import appending
from service.auditlog.events import AuditEvent, EventType
from service.delivery.hubmail import HubMail
from service.episodes.alerts import build_clock_alert
from service.episodes.clocks import pathway_clock
from service.episodes.cwt_reading import london_date
from service.store import db
from service.store import pathway_clocks as store

BATCH = 50
DEFAULT_WARNING_DAYS = 7


def due_alerts(episode: store.ClockedEpisode, today: date, warning_days: int) -> list[tuple[str, date]]:
    """The clock alerts (code, target date) this episode needs now and has not had."""
    clock = pathway_clock(
        episode.pathway_start,
        treated_at=episode.treated_at,
        today=today,
        cwt=episode.cwt,
    )
    due: list[tuple[str, date]] = []
    if clock.transfer_breached:
        due.append(("day-38-breached", clock.transfer_target))
    if clock.treated_on is None:
        if clock.treatment_breached:
            due.append(("day-62-breached", clock.treatment_target))
        elif (clock.treatment_target - today).days <= warning_days:
            due.append(("day-62-approaching", clock.treatment_target))
    elif clock.treatment_breached and episode.cwt.treatment_date is not None:  # treated, but after day 62
        due.append(("day-62-breached", clock.treatment_target))
    return [(code, target) for code, target in due if code not in episode.alerted]


class ClockWatch:
    def __init__(
        self,
        pool: asyncpg.Pool,
        mail: HubMail,
        *,
        warning_days: int = DEFAULT_WARNING_DAYS,
    ) -> None:
        self._pool = pool
        self._mail = mail
        self._warning_days = warning_days

    async def sweep(self, now: datetime) -> int:
        """Send every clock alert now due; returns how many messages were sent."""
        today = london_date(now)
        async with db.transaction(self._pool) as conn:
            # The episodes are locked first (skipping those an acceptance holds), and the audit sequencer's lock
            # last, as an acceptance takes them: the sweep never waits for a row while holding that lock.
            events: list[AuditEvent] = []
            for episode in await store.lease_due_clocks(conn, today, warning_days=self._warning_days, limit=BATCH):
                for code, target in due_alerts(episode, today, self._warning_days):
                    for recipient in (episode.referrer_ods, episode.centre_ods):
                        event = await self._alert(
                            conn, episode=episode, code=code, target=target, recipient=recipient, now=now
                        )
                        if event is not None:
                            events.append(event)
            await appending.append_events(conn, events)  # last: it holds the sequencer's lock until COMMIT
        return len(events)

    async def _alert(
        self,
        conn: asyncpg.Connection,
        *,
        episode: store.ClockedEpisode,
        code: str,
        target: date,
        recipient: str,
        now: datetime,
    ) -> AuditEvent | None:
        """Send one alert unless it was already sent (claimed first, so two sweeping processes send it once); the
        audit event to append, or None."""
        alert_id = uuid.uuid4()
        if not await store.record_clock_alert(
            conn, episode.id, alert=code, recipient_ods=recipient, alert_message=alert_id, at=now
        ):
            return None
        bundle, raw = build_clock_alert(
            event_system=self._mail.event_system,
            code=code,
            recipient_ods=recipient,
            referral_header_id=episode.referral_header_id,
            target=target,
            now=now,
            hub_private_jwk=self._mail.signing_jwk(),
        )
        await self._mail.post_episode_alert(
            conn,
            episode_id=episode.id,
            kind=code,
            message_id=alert_id,
            recipient_ods=recipient,
            bundle=bundle,
            raw=raw,
            at=now,
        )
        return AuditEvent(
            EventType.ALERT_SENT,
            code,
            "hub",
            now,
            message_id=alert_id,
            details={"episode": str(episode.id), "recipient": recipient, "target": target.isoformat()},
        )
