"""The words a person reads in place of the hub's codes: one table for message events and episode message kinds,
episode states, SMDT outcomes, safety-net alerts, deadlines, audit events and their outcomes.

Every staff page shows codes through these functions (Jinja filters `event_words`, `state_words`,
`deadline_words`, `audit_words`, `outcome_words`, set up in `service.ui.rendering`); organisations are the `org`
filter (`service.ui.formatting`: the name with its ODS code beside it). A code not in the table is still shown
as words: dashes become spaces and the first letter is capitalised, never the bare code.
"""

from __future__ import annotations

from collections.abc import Callable

STATES = {
    "referred": "Referred, awaiting the SMDT",
    "more-information-needed": "SMDT asked for more information",
    "accepted": "Accepted by the SMDT",
    "declined-closed": "Declined by the SMDT (closed)",
    "withdrawn": "Referral withdrawn",
    "transfer-requested": "Transfer of care requested",
    "at-centre": "Care at the centre",
    "discharge-summary-sent": "Discharge summary sent",
    "transfer-back-requested": "Transfer back requested",
    "closed": "Closed",
}

# Episode message kinds (episode_messages.kind) and message events (messages.event, the FHIR event codes).
EVENTS = {
    "referral": "Referral to the specialist MDT",
    "withdrawal": "Referral withdrawn",
    "outcome-accepted": "SMDT outcome: accepted",
    "outcome-declined": "SMDT outcome: declined",
    "outcome-more-information-needed": "SMDT outcome: more information needed",
    "transfer-requested": "Request to transfer care",
    "transfer-accepted": "Transfer of care accepted",
    "transfer-rejected": "Transfer of care declined",
    "discharge-summary": "Discharge summary",
    "acknowledgement": "Acknowledgement",
    "referral-outcome": "SMDT outcome",
    "transfer-of-care": "Request to transfer care",
    "transfer-of-care-response": "Answer to a transfer of care",
    "bars-servicerequest-request": "Referral (BaRS)",
    "bars-servicerequest-response": "Answer to a referral (BaRS)",
    "non-delivery-report": "Non-delivery report",
}

OUTCOMES = {
    "accepted": "Accepted",
    "declined": "Declined",
    "more-information-needed": "More information needed",
}

ALERTS = {
    "acknowledgement-overdue": "Acknowledgement overdue",
    "smdt-outcome-overdue": "SMDT outcome overdue",
    "transfer-response-overdue": "Answer to the transfer of care overdue",
    "discharge-summary-overdue": "Discharge summary overdue",
    "day-38-breached": "Day 38 target missed",
    "day-62-approaching": "Day 62 target approaching",
    "day-62-breached": "Day 62 target missed",
}

DEADLINES = {
    "acknowledgement": "Acknowledgement",
    "smdt-outcome": "SMDT outcome",
    "transfer-response": "Answer to the transfer of care",
    "discharge-summary": "Discharge summary",
}

ROLES = {
    "governance": "clinical governance",
    "ops": "operations",
    "smdt-coordinator": "SMDT coordinator",
}

AUDIT_EVENTS = {
    "message-accepted": "Message accepted",
    "message-refused": "Message refused",
    "message-fetched": "Message fetched by the recipient",
    "message-delivered": "Message delivered",
    "key-changed": "Signing key changed",
    "staff-login": "Staff sign-in",
    "alert-sent": "Safety-net alert sent",
    "payload-read": "Clinical content read",
    "message-dead-lettered": "Message could not be delivered",
    "payload-shredded": "Content deleted at the end of retention",
    "delivery-requeued": "Message put back in its queue",
}

AUDIT_OUTCOMES = {
    "success": "done",
    "accepted": "accepted",
    "refused": "refused",
    "dead-letter": "undeliverable",
    "shredded": "deleted",
    **ALERTS,
}


def _fallback(code: str) -> str:
    words = code.replace("_", " ").replace("-", " ").replace(":", ": ").strip()
    return words[:1].upper() + words[1:]


def event_words(code: str | None) -> str:
    """A message's event or an episode message's kind; hub alerts (`alert:<code>`) as the alert's words."""
    if not code:
        return ""
    if code.startswith("alert:"):
        return f"Safety-net alert ({alert_words(code.removeprefix('alert:'))})"
    return EVENTS.get(code) or _fallback(code)


def state_words(code: str | None) -> str:
    return "" if not code else STATES.get(code) or _fallback(code)


def outcome_words(code: str | None) -> str:
    return "" if not code else OUTCOMES.get(code) or _fallback(code)


def alert_words(code: str | None) -> str:
    return "" if not code else ALERTS.get(code) or _fallback(code)


def deadline_words(code: str | None) -> str:
    return "" if not code else DEADLINES.get(code) or _fallback(code)


def audit_words(code: str | None) -> str:
    return "" if not code else AUDIT_EVENTS.get(code) or _fallback(code)


def audit_outcome_words(code: str | None) -> str:
    return "" if not code else AUDIT_OUTCOMES.get(code) or _fallback(code).lower()


def role_words(role: str | None, org: Callable[[str | None], str]) -> str:
    """A staff role in words; a trust role (`trust:<ODS>`) as the trust's name with its code (`org`)."""
    if not role:
        return ""
    if role.startswith("trust:"):
        return org(role.removeprefix("trust:"))
    return ROLES.get(role) or _fallback(role).lower()
