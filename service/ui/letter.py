"""A handover message read as a letter: who wrote to whom and when, the patient as a letter names them, and the
clinical content section by section (the Composition's sections, the ServiceRequest, the Task, the
OperationOutcome), coded values shown by their display text with the code beside it.

Pure and forgiving: it reads a message Bundle (already validated at intake) as plain dicts, never raises on an
element it does not expect, and never passes markup through: the sender's XHTML narrative is reduced to its text
(paragraphs and list items become lines), and the template escapes everything it prints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from html.parser import HTMLParser
from typing import Any

from service.terminology import NHS_NUMBER_SYSTEM, ODS_SYSTEM, PROFILES_DIR

PATHWAY_START_SUFFIX = "cancer-pathway-start-date"
KEY_WORKER_SUFFIX = "key-worker"
EVENT_TITLES = {
    "referral": "Referral to the specialist MDT",
    "referral-outcome": "Specialist MDT outcome",
    "transfer-of-care": "Request to transfer clinical responsibility",
    "transfer-of-care-response": "Answer to a transfer of clinical responsibility",
    "discharge-summary": "Discharge summary",
    "acknowledgement": "Acknowledgement",
}
_BLOCKS = {"p", "div", "li", "br", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "td", "th"}


@dataclass(frozen=True)
class Fact:
    label: str
    value: str


@dataclass
class Section:
    heading: str
    facts: list[Fact] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PatientLines:
    name: str
    nhs_number: str
    born: date | None
    gender: str


@dataclass
class Letter:
    title: str
    event: str
    sent_at: datetime | None
    sender: str
    recipient: str
    patient: PatientLines | None
    sections: list[Section]


@cache
def _code_displays() -> dict[tuple[str, str], str]:
    """Display text of every concept in our CodeSystems (fhir_profiles/), by (system, code)."""
    found: dict[tuple[str, str], str] = {}
    for path in PROFILES_DIR.glob("CodeSystem-*.json"):
        doc = json.loads(path.read_text(encoding="utf-8"))
        for concept in doc.get("concept", []):
            if "display" in concept:
                found[(doc["url"], concept["code"])] = concept["display"]
    return found


def coding_text(coding: Any) -> str:
    """ "Liver metastases (94381002)": the display (ours looked up if absent) with the code beside it."""
    if not isinstance(coding, dict):
        return ""
    code, system = str(coding.get("code", "")), str(coding.get("system", ""))
    display = coding.get("display") or _code_displays().get((system, code))
    if display and code:
        return f"{display} ({code})"
    return str(display or code)


def concept_text(concept: Any) -> str:
    """A CodeableConcept as words: its codings' display texts, else its text."""
    if not isinstance(concept, dict):
        return ""
    parts = [coding_text(c) for c in concept.get("coding", []) if isinstance(c, dict)]
    parts = [p for p in parts if p]
    return "; ".join(parts) if parts else str(concept.get("text", ""))


class _TextOnly(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._current: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        self._current.append(data)

    def _flush(self) -> None:
        text = " ".join("".join(self._current).split())
        if text:
            self.lines.append(text)
        self._current = []

    def text(self) -> list[str]:
        self.close()
        self._flush()
        return self.lines


def narrative_lines(narrative: Any) -> list[str]:
    """The text of an XHTML narrative, one line per paragraph or list item; markup never passes through."""
    div = narrative.get("div") if isinstance(narrative, dict) else None
    if not isinstance(div, str):
        return []
    parser = _TextOnly()
    parser.feed(div)
    return parser.text()


def nhs_number_spaced(value: str) -> str:
    """ "999 123 4567", as letters print it."""
    return f"{value[:3]} {value[3:6]} {value[6:]}" if len(value) == 10 and value.isdigit() else value


def person_name(resource: Any) -> str:
    """ "Given FAMILY" from the first HumanName (the NHS letter convention puts the family name in capitals)."""
    names = resource.get("name") if isinstance(resource, dict) else None
    if not isinstance(names, list) or not names or not isinstance(names[0], dict):
        return ""
    name = names[0]
    given = " ".join(str(g) for g in name.get("given", []) if isinstance(g, str))
    family = str(name.get("family", "")).upper()
    prefix = " ".join(str(p) for p in name.get("prefix", []) if isinstance(p, str))
    return " ".join(part for part in (prefix, given, family) if part) or str(name.get("text", ""))


def _identifier(resource: Any, system: str) -> str:
    for ident in resource.get("identifier", []) if isinstance(resource, dict) else []:
        if isinstance(ident, dict) and ident.get("system") == system:
            return str(ident.get("value", ""))
    return ""


def _parse_date(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _parse_instant(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


class _Bundle:
    """The bundle's resources, found by full URL or by type/id, as references name them."""

    def __init__(self, bundle: dict[str, Any]) -> None:
        self.resources: list[dict[str, Any]] = []
        self._by_ref: dict[str, dict[str, Any]] = {}
        for entry in bundle.get("entry", []) if isinstance(bundle.get("entry"), list) else []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict):
                continue
            self.resources.append(resource)
            if isinstance(entry.get("fullUrl"), str):
                self._by_ref[entry["fullUrl"]] = resource
            if "id" in resource:
                self._by_ref[f"urn:uuid:{resource['id']}"] = resource
                self._by_ref[f"{resource.get('resourceType')}/{resource['id']}"] = resource

    def first(self, kind: str) -> dict[str, Any] | None:
        return next((r for r in self.resources if r.get("resourceType") == kind), None)

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r.get("resourceType") == kind]

    def resolve(self, reference: Any) -> dict[str, Any] | None:
        if not isinstance(reference, dict):
            return None
        return self._by_ref.get(str(reference.get("reference", "")))

    def organisation(self, reference: Any) -> str:
        org = self.resolve(reference)
        if org is not None:
            return _org_text(org)
        ident = reference.get("identifier") if isinstance(reference, dict) else None
        ods = str(ident.get("value", "")) if isinstance(ident, dict) else ""
        named = next((o for o in self.all("Organization") if ods and _identifier(o, ODS_SYSTEM) == ods), None)
        return _org_text(named) if named is not None else ods

    def clinician(self, reference: Any) -> str:
        """ "Dr Given FAMILY, Organisation (ODS)" for a PractitionerRole or Practitioner reference."""
        found = self.resolve(reference)
        if found is None:
            return str(reference.get("display", "")) if isinstance(reference, dict) else ""
        if found.get("resourceType") == "PractitionerRole":
            person = person_name(self.resolve(found.get("practitioner")))
            org = self.organisation(found.get("organization"))
            return ", ".join(part for part in (person, org) if part)
        if found.get("resourceType") == "Organization":
            return _org_text(found)
        return person_name(found)


def _org_text(org: dict[str, Any]) -> str:
    ods = _identifier(org, ODS_SYSTEM)
    name = str(org.get("name", ""))
    return f"{name} ({ods})" if name and ods else name or ods


def _notes(resource: dict[str, Any]) -> list[str]:
    return [str(n["text"]) for n in resource.get("note", []) if isinstance(n, dict) and n.get("text")]


def _extension(resource: dict[str, Any], suffix: str) -> dict[str, Any] | None:
    for ext in resource.get("extension", []):
        if isinstance(ext, dict) and str(ext.get("url", "")).endswith(suffix):
            return ext
    return None


def _facts(*pairs: tuple[str, str]) -> list[Fact]:
    return [Fact(label, value) for label, value in pairs if value]


def _service_request(found: _Bundle, request: dict[str, Any]) -> Section:
    reasons = [concept_text((found.resolve(r) or {}).get("code")) for r in request.get("reasonReference", [])]
    reasons += [concept_text(c) for c in request.get("reasonCode", [])]
    start = _extension(request, PATHWAY_START_SUFFIX)
    worker = _extension(request, KEY_WORKER_SUFFIX)
    started = _parse_date(start.get("valueDate")) if start else None
    return Section(
        "Referral",
        _facts(
            ("Request", concept_text(request.get("code"))),
            ("Reason", "; ".join(r for r in reasons if r)),
            ("Referred by", found.clinician(request.get("requester"))),
            ("Referred to", "; ".join(found.organisation(p) for p in request.get("performer", []))),
            ("Cancer pathway start date", f"{started.day} {started:%B %Y}" if started else ""),
            ("Key worker", found.clinician(worker.get("valueReference")) if worker else ""),
        ),
        _notes(request),
    )


def _task(found: _Bundle, task: dict[str, Any], event: str) -> Section:
    heading = "SMDT decision" if event == "referral-outcome" else "Transfer of clinical responsibility"
    return Section(
        heading,
        _facts(
            ("What", concept_text(task.get("code"))),
            ("Decision", concept_text(task.get("businessStatus"))),
            ("Status", str(task.get("status", ""))),
            ("Reason", concept_text(task.get("statusReason"))),
            ("From", found.clinician(task.get("requester"))),
            ("Decided by" if event == "referral-outcome" else "To", found.clinician(task.get("owner"))),
        ),
        _notes(task),
    )


def _composition(found: _Bundle, composition: dict[str, Any]) -> list[Section]:
    sections = [
        Section(
            str(composition.get("title") or concept_text(composition.get("type")) or "Document"),
            _facts(
                ("Document type", concept_text(composition.get("type"))),
                ("Author", "; ".join(found.clinician(a) for a in composition.get("author", []))),
                ("Custodian", found.organisation(composition.get("custodian"))),
            ),
        )
    ]
    for part in composition.get("section", []):
        if not isinstance(part, dict):
            continue
        coded = concept_text(part.get("code"))
        sections.append(
            Section(str(part.get("title") or coded), _facts(("Section code", coded)), narrative_lines(part.get("text")))
        )
    return sections


def _outcome(outcome: dict[str, Any]) -> Section:
    lines = []
    for issue in outcome.get("issue", []):
        if isinstance(issue, dict):
            text = concept_text(issue.get("details")) or str(issue.get("diagnostics", ""))
            lines.append(f"{issue.get('severity', '')}: {text}".strip(": "))
    return Section("Issues reported", [], lines)


def read_letter(bundle: dict[str, Any]) -> Letter:
    """The message Bundle as a letter (see the module docstring)."""
    found = _Bundle(bundle)
    header = found.first("MessageHeader") or {}
    event = str((header.get("eventCoding") or {}).get("code", ""))
    destinations = [d for d in header.get("destination", []) if isinstance(d, dict)]
    recipient = "; ".join(found.organisation(d.get("receiver")) for d in destinations)
    sections: list[Section] = []
    response = header.get("response")
    if isinstance(response, dict):
        sections.append(Section("In answer to", _facts(("Answer", str(response.get("code", ""))))))
    for resource in found.resources:
        kind = resource.get("resourceType")
        if kind == "ServiceRequest":
            sections.append(_service_request(found, resource))
        elif kind == "Task":
            sections.append(_task(found, resource, event))
        elif kind == "Composition":
            sections.extend(_composition(found, resource))
        elif kind == "OperationOutcome":
            sections.append(_outcome(resource))
    return Letter(
        EVENT_TITLES.get(event, event or "Message"),
        event,
        _parse_instant(bundle.get("timestamp")),
        found.organisation(header.get("sender")),
        recipient,
        _patient(found.first("Patient")),
        sections,
    )


def _patient(patient: dict[str, Any] | None) -> PatientLines | None:
    if patient is None:
        return None
    return PatientLines(
        person_name(patient),
        nhs_number_spaced(_identifier(patient, NHS_NUMBER_SYSTEM)),
        _parse_date(patient.get("birthDate")),
        str(patient.get("gender", "")).capitalize(),
    )
