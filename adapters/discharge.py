"""Build the centre's `discharge-summary` message: a Composition with the PRSB eDischarge headings (coded as the
NHS ITK3 Transfer of Care eDischarge specification codes them), the stay's Encounter, diagnosis, procedure and
medications on discharge. Synthetic data only, like adapters/builders.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from adapters.builders import (
    LIVER_METASTASES,
    SNOMED,
    Clinician,
    SyntheticPatient,
    instant,
    message_bundle,
    message_header,
    named_clinician,
    narrative,
    new_id,
    organization,
    patient_resource,
    reference_to,
    referral_reference,
)
from adapters.cwt_items import Treatment, treatment_extensions, treatment_procedure

DISCHARGE_SUMMARY_TYPE = {"coding": [{"system": SNOMED, "code": "373942005", "display": "Discharge summary"}]}


@dataclass(frozen=True)
class Stay:
    """What a discharge summary reports: the stay's dates and its clinical content (free text, synthetic)."""

    admitted: date
    discharged: date
    summary: str
    plan: str
    medications: tuple[str, ...] = ()
    procedure: tuple[str, str] | None = None  # SNOMED CT code, display
    diagnosis: tuple[str, str] = LIVER_METASTASES
    allergies: str = "No known drug allergies."
    information_given: str | None = None


def discharge_summary(
    event_system: str,
    *,
    sender_ods: str,
    sender_name: str,
    receiver_ods: str,
    receiver_name: str,
    patient: SyntheticPatient,
    author: Clinician,
    referral_identifier: str,
    stay: Stay,
    gp_practice: tuple[str, str] | None = None,
    timestamp: datetime | None = None,
    treatment: Treatment | None = None,
) -> dict[str, Any]:
    """A `discharge-summary` message from the centre (sender) to the referring trust, for the stay that followed
    the referral `referral_identifier`; `gp_practice` is the patient's GP practice (ODS code, name) if known;
    `treatment`, on a cancer pathway, the first definitive treatment (OPCS-4 coded, dated) and the centre's
    waiting time adjustment days."""
    pat = patient_resource(patient)
    hospital = organization(sender_ods, sender_name)
    role, person = named_clinician(author, hospital)
    gp = organization(*gp_practice) if gp_practice else None
    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": new_id(),
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP", "display": "inpatient"},
        "subject": reference_to(pat),
        "basedOn": [referral_reference(referral_identifier)],
        "period": {"start": stay.admitted.isoformat(), "end": stay.discharged.isoformat()},
        "serviceProvider": reference_to(hospital),
    }
    condition: dict[str, Any] = {
        "resourceType": "Condition",
        "id": new_id(),
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
        },
        "code": {"coding": [{"system": SNOMED, "code": stay.diagnosis[0], "display": stay.diagnosis[1]}]},
        "subject": reference_to(pat),
    }
    procedure = treatment_procedure(treatment, reference_to(pat), new_id()) if treatment else _procedure(stay, pat)
    medicines = [_medication(text, pat) for text in stay.medications]
    composition: dict[str, Any] = {
        "resourceType": "Composition",
        "id": new_id(),
        "status": "final",
        "type": DISCHARGE_SUMMARY_TYPE,
        "subject": reference_to(pat),
        "encounter": reference_to(encounter),
        "date": instant(timestamp),
        "author": [reference_to(role)],
        "title": "Discharge summary",
        "custodian": reference_to(hospital),
        "section": _sections(
            stay, patient, _Entries(pat, gp, encounter, condition, procedure, medicines, role), author
        ),
    }
    if treatment is not None and procedure is not None:
        composition["extension"] = treatment_extensions(treatment, reference_to(procedure))
    header = message_header(
        event_system, "discharge-summary", sender=hospital, receiver_ods=receiver_ods, focus=[composition]
    )
    clinical = [encounter, condition, *([procedure] if procedure else []), *medicines]
    orgs = [hospital, *([gp] if gp else [])]
    return message_bundle([header, composition, pat, *clinical, role, person, *orgs], timestamp)


@dataclass(frozen=True)
class _Entries:
    """The resources the sections point at."""

    patient: dict[str, Any]
    gp: dict[str, Any] | None
    encounter: dict[str, Any]
    condition: dict[str, Any]
    procedure: dict[str, Any] | None
    medicines: list[dict[str, Any]]
    author: dict[str, Any]


def _sections(stay: Stay, patient: SyntheticPatient, found: _Entries, author: Clinician) -> list[dict[str, Any]]:
    pat, gp, encounter, condition, procedure = (
        found.patient,
        found.gp,
        found.encounter,
        found.condition,
        found.procedure,
    )
    medicines, role = found.medicines, found.author
    medication_lines = list(stay.medications) or ["No medications on discharge."]
    sections = [
        _section(
            "886731000000109",
            "Patient demographics",
            [pat],
            f"{patient.given} {patient.family}, NHS number {patient.nhs_number}, born {patient.birth_date}",
        ),
        _section(
            "886711000000101", "GP practice", [gp] if gp else [], gp["name"] if gp else "GP practice not recorded."
        ),
        _section("886781000000108", "Admission details", [encounter], f"Admitted {stay.admitted.isoformat()}."),
        _section("886811000000106", "Discharge details", [encounter], f"Discharged {stay.discharged.isoformat()}."),
        _section("887161000000102", "Diagnoses", [condition], stay.diagnosis[1]),
        _section("887181000000106", "Clinical summary", [], stay.summary),
        _section("886921000000105", "Allergies and adverse reactions", [], stay.allergies),
        _section("933361000000108", "Medications and medical devices", medicines, *medication_lines),
        _section("887201000000105", "Plan and requested actions", [], stay.plan),
        _section("887231000000104", "Person completing record", [role], f"{author.given} {author.family}"),
    ]
    if procedure is not None:
        sections.append(
            _section("887171000000109", "Procedures", [procedure], procedure["code"]["coding"][0]["display"])
        )
    if stay.information_given:
        sections.append(_section("1052951000000105", "Information and advice given", [], stay.information_given))
    return sections


def _section(code: str, title: str, entries: list[dict[str, Any]], *text: str) -> dict[str, Any]:
    section: dict[str, Any] = {
        "title": title,
        "code": {"coding": [{"system": SNOMED, "code": code, "display": title}]},
        "text": narrative(*text),
    }
    if entries:
        section["entry"] = [reference_to(entry) for entry in entries]
    return section


def _procedure(stay: Stay, pat: dict[str, Any]) -> dict[str, Any] | None:
    if stay.procedure is None:
        return None
    return {
        "resourceType": "Procedure",
        "id": new_id(),
        "status": "completed",
        "code": {"coding": [{"system": SNOMED, "code": stay.procedure[0], "display": stay.procedure[1]}]},
        "subject": reference_to(pat),
    }


def _medication(text: str, pat: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "MedicationStatement",
        "id": new_id(),
        "status": "active",
        "medicationCodeableConcept": {"text": text},
        "subject": reference_to(pat),
    }
