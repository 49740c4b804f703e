"""What a validated message says about its handover episode: the patient, the referral, and the `Fact`.

Episodes are keyed by the patient's NHS number and the referral ServiceRequest's identifier. Every message
after the referral names the referral: a `ServiceRequest` entry carrying its identifier, or a `basedOn`
reference (Task, Encounter) whose `identifier` or target entry carries it. Acknowledgements belong to the
episode of the message they acknowledge (`MessageHeader.response.identifier`).

It reads the message through its one index (`BundleIndex`, built by intake's InboundMessage), never indexing the
Bundle again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from service.episodes.machine import Clinician, Fact, Kind
from service.terminology import NHS_NUMBER_SYSTEM, ODS_SYSTEM
from service.validation.bundle import BundleIndex

PATHWAY_START_URL = "https://handover.nhs.example/fhir/StructureDefinition/cancer-pathway-start-date"
KEY_WORKER_URL = "https://handover.nhs.example/fhir/StructureDefinition/key-worker"
_OUTCOMES = {
    "accepted": Kind.OUTCOME_ACCEPTED,
    "declined": Kind.OUTCOME_DECLINED,
    "more-information-needed": Kind.OUTCOME_MORE_INFORMATION,
}


class NotAnEpisodeMessage(ValueError):  # noqa: N818 - read as a sentence at the call site
    """The message names no patient or referral, so it cannot belong to an episode."""


@dataclass(frozen=True)
class EpisodeMessage:
    nhs_number: str
    referral_identifier: str
    fact: Fact
    pathway_start: date | None = None
    key_worker: Clinician | None = None  # named on a referral (extension key-worker)


class ReadMessage(Protocol):
    """What the episode reader needs of a parsed message (intake's InboundMessage is one): its MessageHeader in
    Handover form, and the one index of its entries."""

    @property
    def header(self) -> dict[str, Any]: ...

    @property
    def index(self) -> BundleIndex: ...


@dataclass(frozen=True)
class Acknowledgement:
    acknowledged_header_id: str
    code: str


def read_acknowledgement(message: ReadMessage) -> Acknowledgement | None:
    response = message.header.get("response") or {}
    identifier, code = response.get("identifier"), response.get("code")
    return Acknowledgement(identifier, code) if isinstance(identifier, str) and isinstance(code, str) else None


def read_episode_message(
    message: ReadMessage, *, event: str, message_id: str, sender: str, recipient: str, at: datetime
) -> EpisodeMessage:
    """The episode facts of a message whose event is not `acknowledgement`; NotAnEpisodeMessage if it has none."""
    bundle = _Bundle(message)
    focus = bundle.focus()
    nhs_number = bundle.nhs_number()
    referral_id = bundle.referral_identifier(focus)
    if event == "referral":
        withdrawn = focus.get("status") in ("revoked", "entered-in-error")
        kind = Kind.WITHDRAWAL if withdrawn else Kind.REFERRAL
        fact = Fact(kind, message_id, sender, recipient, at, bundle.clinician(focus.get("requester")))
        return EpisodeMessage(nhs_number, referral_id, fact, _pathway_start(focus), _key_worker(bundle, focus))
    if event == "referral-outcome":
        code = _first_code(focus.get("businessStatus")) or _first_code(focus.get("code"))
        if code not in _OUTCOMES:
            raise NotAnEpisodeMessage("the SMDT outcome must be accepted, declined or more-information-needed")
        return EpisodeMessage(nhs_number, referral_id, Fact(_OUTCOMES[code], message_id, sender, recipient, at))
    if event in ("transfer-of-care", "transfer-of-care-response"):
        transfer_id = _identifier(focus)
        if event == "transfer-of-care":
            fact = Fact(
                Kind.TRANSFER_REQUESTED,
                message_id,
                sender,
                recipient,
                at,
                bundle.clinician(focus.get("owner")),
                transfer_id,
            )
        else:
            status = focus.get("status")
            kind = Kind.TRANSFER_ACCEPTED if status == "accepted" else Kind.TRANSFER_REJECTED
            fact = Fact(kind, message_id, sender, recipient, at, bundle.clinician(focus.get("owner")), transfer_id)
        return EpisodeMessage(nhs_number, referral_id, fact)
    if event == "discharge-summary":
        return EpisodeMessage(nhs_number, referral_id, Fact(Kind.DISCHARGE_SUMMARY, message_id, sender, recipient, at))
    raise NotAnEpisodeMessage(f"{event} messages do not belong to an episode")


class _Bundle:
    """The message as the episode reader resolves it: by fullUrl, through the message's index (the profiles have
    made every fullUrl unique)."""

    def __init__(self, message: ReadMessage) -> None:
        self.header = message.header
        self.resolve = message.index.target
        self.resources = message.index.resources()

    def focus(self) -> dict[str, Any]:
        focus = (self.header.get("focus") or [None])[0]
        resource = self.resolve(focus)
        if resource is None:
            raise NotAnEpisodeMessage("the MessageHeader has no focus resource in the Bundle")
        return resource

    def nhs_number(self) -> str:
        for resource in self.resources:
            if resource.get("resourceType") == "Patient":
                for identifier in resource.get("identifier", []):
                    if identifier.get("system") == NHS_NUMBER_SYSTEM and isinstance(identifier.get("value"), str):
                        return str(identifier["value"])
        raise NotAnEpisodeMessage("the message carries no patient with an NHS number")

    def referral_identifier(self, focus: dict[str, Any]) -> str:
        if focus.get("resourceType") == "ServiceRequest" and _identifier(focus):
            return str(_identifier(focus))
        candidates: set[str] = set()
        for resource in self.resources:
            for reference in resource.get("basedOn", []):
                target = self.resolve(reference)
                value = _identifier(target) if target else (reference.get("identifier") or {}).get("value")
                if isinstance(value, str):
                    candidates.add(value)
        if not candidates:
            candidates = {
                str(_identifier(r))
                for r in self.resources
                if r.get("resourceType") == "ServiceRequest" and _identifier(r)
            }
        if len(candidates) != 1:
            raise NotAnEpisodeMessage("the message must name exactly one referral (basedOn the referral's identifier)")
        return candidates.pop()

    def clinician(self, reference: Any) -> Clinician | None:
        role = self.resolve(reference)
        if role is None:
            return None
        practitioner = (
            self.resolve(role.get("practitioner")) if role.get("resourceType") == "PractitionerRole" else role
        )
        organisation = self.resolve(role.get("organization"))
        ods = _ods(organisation) if organisation else None
        if practitioner is None or ods is None:
            return None
        return Clinician(ods, _name(practitioner), _identifier(practitioner))


def _identifier(resource: dict[str, Any] | None) -> str | None:
    for identifier in (resource or {}).get("identifier", []):
        if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
            return str(identifier["value"])
    return None


def _ods(organisation: dict[str, Any]) -> str | None:
    for identifier in organisation.get("identifier", []):
        if identifier.get("system") == ODS_SYSTEM:
            return str(identifier.get("value"))
    return None


def _name(practitioner: dict[str, Any]) -> str:
    for name in practitioner.get("name", []):
        parts = [*name.get("prefix", []), *name.get("given", []), name.get("family", "")]
        text = name.get("text") or " ".join(p for p in parts if p)
        if text:
            return str(text)
    return "(unnamed clinician)"


def _first_code(concept: Any) -> str | None:
    for coding in (concept or {}).get("coding", []) if isinstance(concept, dict) else []:
        if isinstance(coding.get("code"), str):
            return str(coding["code"])
    return None


def _key_worker(bundle: _Bundle, request: dict[str, Any]) -> Clinician | None:
    for extension in request.get("extension", []):
        if isinstance(extension, dict) and extension.get("url") == KEY_WORKER_URL:
            return bundle.clinician(extension.get("valueReference"))
    return None


def _pathway_start(request: dict[str, Any]) -> date | None:
    for extension in request.get("extension", []):
        if extension.get("url") == PATHWAY_START_URL and isinstance(extension.get("valueDate"), str):
            return date.fromisoformat(extension["valueDate"])
    return None
