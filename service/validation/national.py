"""Messages in national form (NHS Booking and Referral Standard, BaRS): what the hub needs to route them.

A BaRS message names its event in BaRS's own CodeSystem and usually identifies sender and receiver only by a
reference to an Organization entry. The conformance resources say how such a message is handled (each bars-*
MessageDefinition's `base` is a Handover event); this module reads the routing facts either way, so the envelope
checks (service/messagefacts.py) can accept both forms.
"""

from __future__ import annotations

import copy
from typing import Any

from service.terminology import ODS_SYSTEM, is_ods_code
from service.validation.bundle import BundleIndex
from service.validation.loader import Conformance


def handled_as(conformance: Conformance, coding: object) -> str | None:
    """The Handover event a MessageHeader.eventCoding is handled as: itself for a Handover event, the mapped event
    for an accepted BaRS event, None for anything else."""
    if not isinstance(coding, dict):
        return None
    return conformance.handover_event(coding.get("system"), coding.get("code"))


def in_handover_form(doc: dict[str, Any], conformance: Conformance, index: BundleIndex | None = None) -> dict[str, Any]:
    """What the envelope checks and routing should read for `doc`: `doc` itself when it is in Handover form; for an
    accepted BaRS message, a copy whose MessageHeader names the Handover event it is handled as and gives the
    sender's and receivers' ODS codes as identifiers (taken from the Organization entries it refers to). The
    original is never changed: it is what was signed, and what is stored and delivered. `index` is `doc`'s index
    when the caller already has one (it is built here otherwise, once, for every party)."""
    entries = doc.get("entry")
    header = (
        entries[0].get("resource") if isinstance(entries, list) and entries and isinstance(entries[0], dict) else None
    )
    coding = header.get("eventCoding") if isinstance(header, dict) else None
    rule = conformance.message_rule(*(coding.get(k) for k in ("system", "code"))) if isinstance(coding, dict) else None
    if rule is None or (rule.event_system, rule.event_code) == (rule.handover_system, rule.handover_event):
        return doc
    mapped = copy.deepcopy(doc)
    mapped_header = mapped["entry"][0]["resource"]
    mapped_header["eventCoding"] = {"system": rule.handover_system, "code": rule.handover_event}
    parties = [mapped_header.get("sender")]
    destinations = mapped_header.get("destination")
    parties += (
        [d.get("receiver") for d in destinations if isinstance(d, dict)] if isinstance(destinations, list) else []
    )
    index = index if index is not None else BundleIndex(doc)
    for party in parties:
        if isinstance(party, dict) and _ods(party.get("identifier")) is None:
            ods = party_ods(doc, party, index)
            if ods is not None:
                party["identifier"] = {"system": ODS_SYSTEM, "value": ods}
    return mapped


def party_ods(doc: dict[str, Any], party: object, index: BundleIndex | None = None) -> str | None:
    """The ODS code of a MessageHeader `sender` or `destination.receiver` Reference: its own identifier if it has an
    ODS one, else the ODS identifier of the Organization entry it refers to; None if neither gives a valid code.
    `index` is `doc`'s index when the caller has one."""
    if not isinstance(party, dict):
        return None
    own = _ods(party.get("identifier"))
    if own is not None:
        return own
    target = (index if index is not None else BundleIndex(doc)).resolve(party)
    if target is None or target.resource.get("resourceType") != "Organization":
        return None
    identifiers = target.resource.get("identifier")
    found = {_ods(i) for i in identifiers} - {None} if isinstance(identifiers, list) else set()
    return found.pop() if len(found) == 1 else None


def _ods(identifier: object) -> str | None:
    if not isinstance(identifier, dict) or identifier.get("system") != ODS_SYSTEM:
        return None
    value = identifier.get("value")
    return value if is_ods_code(value) else None
