"""The JSON the API shows for an episode: state, who is responsible now, clocks, deadlines, timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from service.episodes import snapshot
from service.episodes.clocks import pathway_clock
from service.episodes.cwt_reading import london_date
from service.episodes.cwt_view import cancer_waiting_times
from service.store.cwt import CwtDates
from service.store.episode_reads import Deadline, TimelineEntry
from service.store.episodes import EpisodeRow, LedgerEntry
from service.store.pathway_breaches import STOPPED_STATES


def _deadline(d: Deadline, now: datetime) -> dict[str, Any]:
    return {
        "kind": d.kind,
        "message_id": str(d.message_id),
        "owed_by": d.owed_by,
        "waiting": d.waiting,
        "due_at": d.due_at.isoformat(),
        "met_at": d.met_at.isoformat() if d.met_at else None,
        "overdue": d.met_at is None and d.due_at <= now,
        "alerted_at": d.alerted_at.isoformat() if d.alerted_at else None,
    }


def episode_summary(
    row: EpisodeRow, deadlines: list[Deadline], now: datetime, cwt: CwtDates | None = None
) -> dict[str, Any]:
    episode = snapshot.load(row.snapshot)
    holder = episode.responsible
    treated = next((h.since for h in episode.ledger[1:] if h.clinician.ods == row.centre_ods), None)
    body: dict[str, Any] = {
        "id": str(row.id),
        "state": row.state,
        "referrer": row.referrer_ods,
        "centre": row.centre_ods,
        "responsible": {
            "ods": holder.clinician.ods,
            "clinician": holder.clinician.name,
            "identifier": holder.clinician.identifier,
            "since": holder.since.isoformat(),
            "accepted_by": holder.accepted_by.name if holder.accepted_by else None,
        },
        "pending_transfer": None
        if episode.pending is None
        else {
            "to": {"ods": episode.pending.to.ods, "clinician": episode.pending.to.name},
            "requested_at": episode.pending.requested_at.isoformat(),
        },
        "opened_at": row.opened_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
        "overdue": [_deadline(d, now) for d in deadlines if d.met_at is None and d.due_at <= now],
    }
    if row.pathway_start is not None:
        clock = pathway_clock(
            row.pathway_start,
            treated_at=treated,
            today=london_date(now),
            cwt=cwt,
            stopped=row.state in STOPPED_STATES,
        )
        body["pathway"] = clock.as_json()
    return body


def episode_detail(
    row: EpisodeRow,
    deadlines: list[Deadline],
    timeline: list[TimelineEntry],
    ledger: list[LedgerEntry],
    now: datetime,
    *,
    cwt: CwtDates | None = None,
) -> dict[str, Any]:
    body = episode_summary(row, deadlines, now, cwt)
    body["cancer_waiting_times"] = (
        None if cwt is None else cancer_waiting_times(str(row.id), row.referrer_ods, row.centre_ods, cwt)
    )
    body["timeline"] = [
        {
            "message_id": str(t.message_id),
            "kind": t.kind,
            "sender": t.sender_ods,
            "recipient": t.recipient_ods,
            "at": t.at.isoformat(),
            "changed_episode": t.changed,
            "acknowledged_at": t.acknowledged_at.isoformat() if t.acknowledged_at else None,
        }
        for t in timeline
    ]
    body["responsibility_history"] = [
        {
            "ods": e.ods,
            "clinician": e.clinician_name,
            "identifier": e.clinician_identifier,
            "since": e.since.isoformat(),
            "caused_by": str(e.caused_by),
            "accepted_by": e.accepted_by_name,
        }
        for e in ledger
    ]
    body["deadlines"] = [_deadline(d, now) for d in deadlines]
    return body
