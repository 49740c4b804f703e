"""The Cancer Waiting Times items a trust's messages carry, as the profiles in fhir_profiles/ place them (the mapping
table is in fhir_profiles/README.md): the Inter-Provider Transfer (IPT) data set on a cancer pathway referral, the
decision to treat date on an accepted SMDT outcome, and the first definitive treatment with the centre's
adjustment days on the discharge summary. Synthetic data only, like adapters/builders.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from service.terminology import ODS_SYSTEM

HANDOVER = "https://handover.nhs.example/fhir"
PATHWAY_ID_URL = f"{HANDOVER}/StructureDefinition/patient-pathway-identifier"
PATHWAY_ID_SYSTEM = f"{HANDOVER}/Id/patient-pathway-identifier"
DECISION_TO_REFER_URL = f"{HANDOVER}/StructureDefinition/decision-to-refer-date"
FASTER_DIAGNOSIS_URL = f"{HANDOVER}/StructureDefinition/faster-diagnosis-date"
ADJUSTMENT_URL = f"{HANDOVER}/StructureDefinition/waiting-time-adjustment"
DECISION_TO_TREAT_URL = f"{HANDOVER}/StructureDefinition/decision-to-treat-date"
FIRST_TREATMENT_URL = f"{HANDOVER}/StructureDefinition/first-definitive-treatment"
TREATMENT_FUNCTION_SYSTEM = "https://fhir.nhs.uk/CodeSystem/NHSDataModelAndDictionary-treatment-function"
OPCS4_SYSTEM = "http://fhir.hl7.org.uk/CodeSystem/OPCS-4"
LOCAL_ID_TYPE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}
HEPATOBILIARY_SURGERY = ("105", "Hepatobiliary and Pancreatic Surgery")
RIGHT_HEMIHEPATECTOMY = ("J02.1", "Right hemihepatectomy NEC")


def london_today() -> date:
    """Today in Europe/London: the calendar CWT counts in (the hub dates the IPT by it)."""
    return datetime.now(UTC).astimezone(ZoneInfo("Europe/London")).date()


@dataclass(frozen=True)
class IptDataSet:
    """The IPT data set items a referral carries beyond what every referral has (NHS number, referring and
    receiving organisations, referring clinician, pathway start date)."""

    local_patient_id: str
    gp_practice_ods: str
    pathway_id: str
    pathway_issuer_ods: str
    decision_to_refer: date
    treatment_function: tuple[str, str] = HEPATOBILIARY_SURGERY
    adjustment_days: int = 0
    faster_diagnosis: date | None = None

    @classmethod
    def synthetic(cls, sender_ods: str, nhs_number: str, decision_to_refer: date, **items: Any) -> IptDataSet:
        """Made-up identifiers for a synthetic patient (the GP practice is a fictitious ODS-shaped code)."""
        return cls(
            local_patient_id=f"K{nhs_number[-6:]}",
            gp_practice_ods="Y99001",
            pathway_id=f"{sender_ods}{nhs_number[-8:]}PPI",
            pathway_issuer_ods=sender_ods,
            decision_to_refer=decision_to_refer,
            **items,
        )


def add_ipt_data_set(request: dict[str, Any], patient: dict[str, Any], sender_ods: str, ipt: IptDataSet) -> None:
    """Put the IPT items on the referral's ServiceRequest and Patient (in place)."""
    patient["identifier"].append(
        {
            "type": LOCAL_ID_TYPE,
            "system": f"https://fhir.{sender_ods.lower()}.nhs.example/Id/local-patient-identifier",
            "value": ipt.local_patient_id,
            "assigner": {"identifier": {"system": ODS_SYSTEM, "value": sender_ods}},
        }
    )
    patient["generalPractitioner"] = [
        {"type": "Organization", "identifier": {"system": ODS_SYSTEM, "value": ipt.gp_practice_ods}}
    ]
    code, display = ipt.treatment_function
    request["category"] = [{"coding": [{"system": TREATMENT_FUNCTION_SYSTEM, "code": code, "display": display}]}]
    request["extension"] += [
        {
            "url": PATHWAY_ID_URL,
            "valueIdentifier": {
                "system": PATHWAY_ID_SYSTEM,
                "value": ipt.pathway_id,
                "assigner": {"identifier": {"system": ODS_SYSTEM, "value": ipt.pathway_issuer_ods}},
            },
        },
        {"url": DECISION_TO_REFER_URL, "valueDate": ipt.decision_to_refer.isoformat()},
        {"url": ADJUSTMENT_URL, "valueUnsignedInt": ipt.adjustment_days},
    ]
    if ipt.faster_diagnosis is not None:
        request["extension"].append({"url": FASTER_DIAGNOSIS_URL, "valueDate": ipt.faster_diagnosis.isoformat()})


def add_decision_to_treat(task: dict[str, Any], decided: date) -> None:
    task.setdefault("extension", []).append({"url": DECISION_TO_TREAT_URL, "valueDate": decided.isoformat()})


@dataclass(frozen=True)
class Treatment:
    """The first definitive treatment a discharge summary reports: the operation (OPCS-4) and its date, and the
    centre's waiting time adjustment days after the transfer."""

    performed: date
    opcs4: tuple[str, str] = RIGHT_HEMIHEPATECTOMY
    adjustment_days: int = 0


def treatment_procedure(treatment: Treatment, patient_ref: dict[str, str], procedure_id: str) -> dict[str, Any]:
    code, display = treatment.opcs4
    return {
        "resourceType": "Procedure",
        "id": procedure_id,
        "status": "completed",
        "code": {"coding": [{"system": OPCS4_SYSTEM, "code": code, "display": display}], "text": display},
        "subject": patient_ref,
        "performedDateTime": treatment.performed.isoformat(),
    }


def treatment_extensions(treatment: Treatment, procedure_ref: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"url": FIRST_TREATMENT_URL, "valueReference": procedure_ref},
        {"url": ADJUSTMENT_URL, "valueUnsignedInt": treatment.adjustment_days},
    ]
