"""An `Episode` as JSON for the `episodes.snapshot` column, and back, losing nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from service.episodes.machine import Clinician, Episode, Holder, PendingTransfer, State


def _clinician(c: Clinician) -> dict[str, Any]:
    return {"ods": c.ods, "name": c.name, "identifier": c.identifier}


def _clinician_from(d: dict[str, Any]) -> Clinician:
    return Clinician(d["ods"], d["name"], d.get("identifier"))


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def dump(episode: Episode) -> dict[str, Any]:
    pending = episode.pending
    return {
        "state": episode.state.value,
        "referrer": episode.referrer_ods,
        "centre": episode.centre_ods,
        "ledger": [
            {
                "clinician": _clinician(h.clinician),
                "since": h.since.isoformat(),
                "caused_by": h.caused_by,
                "accepted_by": _clinician(h.accepted_by) if h.accepted_by else None,
            }
            for h in episode.ledger
        ],
        "pending": None
        if pending is None
        else {
            "transfer_id": pending.transfer_id,
            "to": _clinician(pending.to),
            "requested_at": pending.requested_at.isoformat(),
            "message_id": pending.message_id,
            "back_to_referrer": pending.back_to_referrer,
        },
        "discharge_summary_at": episode.discharge_summary_at.isoformat() if episode.discharge_summary_at else None,
        "answered": [[transfer_id, accepted] for transfer_id, accepted in episode.answered],
        "history": list(episode.history),
    }


def load(d: dict[str, Any]) -> Episode:
    pending = d.get("pending")
    return Episode(
        state=State(d["state"]),
        referrer_ods=d["referrer"],
        centre_ods=d["centre"],
        ledger=tuple(
            Holder(
                _clinician_from(h["clinician"]),
                datetime.fromisoformat(h["since"]),
                h["caused_by"],
                _clinician_from(h["accepted_by"]) if h.get("accepted_by") else None,
            )
            for h in d["ledger"]
        ),
        pending=None
        if pending is None
        else PendingTransfer(
            pending["transfer_id"],
            _clinician_from(pending["to"]),
            datetime.fromisoformat(pending["requested_at"]),
            pending["message_id"],
            pending["back_to_referrer"],
        ),
        discharge_summary_at=_time(d.get("discharge_summary_at")),
        answered=tuple((str(t), bool(a)) for t, a in d.get("answered", [])),
        history=tuple(d.get("history", [])),
    )
