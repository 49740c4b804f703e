"""Who the patient is and what the referral asks, read from each episode's latest referral for the care roles
that may see it (the staff pages decide who: `service.ui.access.may_see_patient`).

The hub keeps no copy of demographics: episodes are keyed by an HMAC of the NHS number, and payloads are sealed
by the vault. For a page shown to a care role (the centre's SMDT coordinator, or a trust on the episode) the
latest referral is opened with the vault and reduced here to the patient's name, NHS number and date of birth,
the referral question, the diagnosis (the referral's reason) and the primary site (another Condition: the
primary tumour), and the referring consultant; nothing of it is stored or
logged. When the payload cannot be opened (its data key was shredded at the end of retention, the keys are
unavailable, or it fails authentication) the episode simply has no summary and the page says so.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

import asyncpg

from service.crypto.envelope import PayloadUnreadableError
from service.crypto.vault import PayloadShreddedError, PayloadVault
from service.errors import HandoverError
from service.store import db, referral_payloads
from service.terminology import NHS_NUMBER_SYSTEM

log = logging.getLogger("handover.episodes")


@dataclass(frozen=True)
class ReferralSummary:
    """The patient and the referral as the latest referral states them (empty strings where it does not)."""

    name: str
    nhs_number: str  # ten digits, as sent
    birth_date: date | None
    question: str
    diagnosis: str
    primary_site: str
    referring_consultant: str


async def referral_summaries(
    pool: asyncpg.Pool, vault: PayloadVault, episode_ids: Iterable[UUID]
) -> dict[UUID, ReferralSummary]:
    """The summary of each episode whose latest referral can be opened now (others are absent)."""
    wanted = list(dict.fromkeys(episode_ids))
    if not wanted:
        return {}
    async with db.connection(pool) as conn:
        stored = await referral_payloads.latest_referrals(conn, wanted)
    found: dict[UUID, ReferralSummary] = {}
    for episode_id, payload in stored.items():
        try:
            bundle = json.loads(await vault.open(payload))
        except (PayloadShreddedError, PayloadUnreadableError, HandoverError, ValueError):
            log.info("referral not summarised: its payload cannot be opened", extra={"episode": str(episode_id)})
            continue
        if isinstance(bundle, dict):
            found[episode_id] = summarise(bundle)
    return found


def summarise(bundle: dict[str, Any]) -> ReferralSummary:
    """The summary of one referral Bundle (already validated at intake; unexpected shapes read as empty)."""
    resources = _Resources(bundle)
    patient = resources.first("Patient") or {}
    request = resources.first("ServiceRequest") or {}
    reasons = [c for c in (resources.resolve(r) for r in _list(request.get("reasonReference"))) if c]
    condition = reasons[0] if reasons else (resources.first("Condition") or {})
    primary = next((c for c in resources.all("Condition") if c is not condition), None)
    notes = [str(n.get("text", "")).strip() for n in _list(request.get("note")) if isinstance(n, dict)]
    return ReferralSummary(
        name=person_name(patient),
        nhs_number=_identifier(patient, NHS_NUMBER_SYSTEM),
        birth_date=_date(patient.get("birthDate")),
        question=" ".join(n for n in notes if n),
        diagnosis=concept_text(condition.get("code")),
        primary_site=_primary_site(primary),
        referring_consultant=resources.clinician(request.get("requester")),
    )


def _primary_site(primary: dict[str, Any] | None) -> str:
    """The primary tumour's site: a Condition besides the referral's reason (which, for liver metastases, is the
    secondary), by its `bodySite`, else by its diagnosis; empty when the referral names no primary."""
    if primary is None:
        return ""
    sites = [t for t in (concept_text(s) for s in _list(primary.get("bodySite"))) if t]
    return "; ".join(sites) or concept_text(primary.get("code"))


def person_name(resource: Any) -> str:
    """ "Given FAMILY" from the first HumanName (NHS letters put the family name in capitals)."""
    names = resource.get("name") if isinstance(resource, dict) else None
    if not isinstance(names, list) or not names or not isinstance(names[0], dict):
        return ""
    name = names[0]
    given = " ".join(str(g) for g in _list(name.get("given")) if isinstance(g, str))
    family = str(name.get("family", "")).upper()
    prefix = " ".join(str(p) for p in _list(name.get("prefix")) if isinstance(p, str))
    return " ".join(part for part in (prefix, given, family) if part) or str(name.get("text", ""))


def concept_text(concept: Any) -> str:
    """A CodeableConcept's text, else its first coding's display, else its code."""
    if not isinstance(concept, dict):
        return ""
    if isinstance(concept.get("text"), str):
        return str(concept["text"])
    for coding in _list(concept.get("coding")):
        if isinstance(coding, dict) and (coding.get("display") or coding.get("code")):
            return str(coding.get("display") or coding.get("code"))
    return ""


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _identifier(resource: dict[str, Any], system: str) -> str:
    for identifier in _list(resource.get("identifier")):
        if isinstance(identifier, dict) and identifier.get("system") == system:
            return str(identifier.get("value", ""))
    return ""


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) and len(value) == 10 else None
    except ValueError:
        return None


class _Resources:
    """The bundle's resources, found by full URL or by type/id, as references name them."""

    def __init__(self, bundle: dict[str, Any]) -> None:
        self.resources: list[dict[str, Any]] = []
        self.by_reference: dict[str, dict[str, Any]] = {}
        for entry in _list(bundle.get("entry")):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict):
                continue
            self.resources.append(resource)
            if isinstance(entry.get("fullUrl"), str):
                self.by_reference[entry["fullUrl"]] = resource
            self.by_reference[f"{resource.get('resourceType')}/{resource.get('id')}"] = resource
            self.by_reference[f"urn:uuid:{resource.get('id')}"] = resource

    def first(self, kind: str) -> dict[str, Any] | None:
        return next((r for r in self.resources if r.get("resourceType") == kind), None)

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r.get("resourceType") == kind]

    def resolve(self, reference: Any) -> dict[str, Any] | None:
        if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
            return None
        return self.by_reference.get(reference["reference"])

    def clinician(self, reference: Any) -> str:
        """A PractitionerRole's practitioner (or a Practitioner) by name."""
        found = self.resolve(reference)
        if found is None:
            return str(reference.get("display", "")) if isinstance(reference, dict) else ""
        if found.get("resourceType") == "PractitionerRole":
            return person_name(self.resolve(found.get("practitioner")))
        return person_name(found)
