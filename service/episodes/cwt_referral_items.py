"""What the cancer extracts read from a pathway's referral: the IPT data set items the episode does not keep
(fhir_profiles/README.md maps each to its FHIR element) and the patient's identity for an identifiable extract.

Pure and forgiving: a parsed referral Bundle in, `ReferralItems` out; an element that is absent or not of the
expected shape gives None (the column stays blank), never an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.terminology import NHS_NUMBER_SYSTEM, ODS_SYSTEM

PATIENT_PATHWAY_IDENTIFIER_URL = "https://handover.nhs.example/fhir/StructureDefinition/patient-pathway-identifier"
TREATMENT_FUNCTION_SYSTEM = "https://fhir.nhs.uk/CodeSystem/NHSDataModelAndDictionary-treatment-function"


@dataclass(frozen=True)
class ReferralItems:
    """The referral's items (None: not carried, or not read). The first five identify the patient."""

    nhs_number: str | None = None
    birth_date: str | None = None
    local_patient_identifier: str | None = None
    local_patient_identifier_issuer: str | None = None
    patient_pathway_identifier: str | None = None
    patient_pathway_identifier_issuer: str | None = None
    gp_practice: str | None = None
    referring_professional: str | None = None
    treatment_function: str | None = None
    metastatic_site: str | None = None

    def without_identity(self) -> ReferralItems:
        """The same items with everything that identifies the patient removed."""
        return ReferralItems(
            gp_practice=self.gp_practice,
            referring_professional=self.referring_professional,
            treatment_function=self.treatment_function,
            metastatic_site=self.metastatic_site,
        )


def referral_items(doc: Any) -> ReferralItems:
    """The extract's items from a referral Bundle (a parsed JSON document)."""
    entries = [e for e in _list(doc.get("entry") if isinstance(doc, dict) else None) if isinstance(e, dict)]
    resources: list[dict[str, Any]] = [e["resource"] for e in entries if isinstance(e.get("resource"), dict)]
    by_url = {e.get("fullUrl"): e["resource"] for e in entries if isinstance(e.get("resource"), dict)}
    patient = _first(resources, "Patient")
    request = _first(resources, "ServiceRequest")
    identifiers = [i for i in _list(patient.get("identifier")) if isinstance(i, dict)]
    local = next((i for i in identifiers if _is_mr(i)), None) or next(
        (i for i in identifiers if i.get("system") != NHS_NUMBER_SYSTEM), {}
    )
    pathway = next(
        (
            x.get("valueIdentifier")
            for x in _list(request.get("extension"))
            if isinstance(x, dict) and x.get("url") == PATIENT_PATHWAY_IDENTIFIER_URL
        ),
        None,
    )
    pathway = pathway if isinstance(pathway, dict) else {}
    return ReferralItems(
        nhs_number=_text(next((i.get("value") for i in identifiers if i.get("system") == NHS_NUMBER_SYSTEM), None)),
        birth_date=_text(patient.get("birthDate")),
        local_patient_identifier=_text(local.get("value")),
        local_patient_identifier_issuer=_assigner(local),
        patient_pathway_identifier=_text(pathway.get("value")),
        patient_pathway_identifier_issuer=_assigner(pathway),
        gp_practice=_ods(_list(patient.get("generalPractitioner"))),
        referring_professional=_requester(request, by_url),
        treatment_function=_treatment_function(request),
        metastatic_site=_site(_first(resources, "Condition").get("code")),
    )


def _first(resources: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next((r for r in resources if r.get("resourceType") == kind), {})


def _is_mr(identifier: dict[str, Any]) -> bool:
    codings = _list(identifier.get("type", {}).get("coding") if isinstance(identifier.get("type"), dict) else None)
    return any(isinstance(c, dict) and c.get("code") == "MR" for c in codings)


def _assigner(identifier: dict[str, Any]) -> str | None:
    assigner = identifier.get("assigner")
    return _ods([assigner]) if isinstance(assigner, dict) else None


def _ods(references: list[Any]) -> str | None:
    """The first ODS code among logical references (`{"identifier": {"system": ODS, "value": …}}`)."""
    for reference in references:
        identifier = reference.get("identifier") if isinstance(reference, dict) else None
        if isinstance(identifier, dict) and identifier.get("system") == ODS_SYSTEM:
            return _text(identifier.get("value"))
    return None


def _requester(request: dict[str, Any], by_url: dict[Any, dict[str, Any]]) -> str | None:
    """The referring professional's identifier (e.g. GMC number): requester → PractitionerRole → Practitioner."""
    role = _resolve(request.get("requester"), by_url)
    practitioner = (
        _resolve(role.get("practitioner"), by_url) if role.get("resourceType") == "PractitionerRole" else role
    )
    identifiers = [i for i in _list(practitioner.get("identifier")) if isinstance(i, dict)]
    return _text(identifiers[0].get("value")) if identifiers else None


def _resolve(reference: Any, by_url: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    return by_url.get(reference.get("reference"), {}) if isinstance(reference, dict) else {}


def _treatment_function(request: dict[str, Any]) -> str | None:
    for category in _list(request.get("category")):
        for coding in _list(category.get("coding") if isinstance(category, dict) else None):
            if isinstance(coding, dict) and coding.get("system") == TREATMENT_FUNCTION_SYSTEM:
                return _text(coding.get("code"))
    return None


def _site(code: Any) -> str | None:
    if not isinstance(code, dict):
        return None
    coding = next((c for c in _list(code.get("coding")) if isinstance(c, dict) and c.get("code")), None)
    if coding is None:
        return _text(code.get("text"))
    display = coding.get("display") or code.get("text")
    return f"{display} (SNOMED CT {coding['code']})" if display else f"SNOMED CT {coding['code']}"


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
