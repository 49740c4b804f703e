"""The extracts' cells and the items read from a referral (hazards HAZ-22, HAZ-24): the published example's
patient and metastatic site; odd documents give blanks, never an error; cells a spreadsheet reads safely."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from service.episodes.cwt_extract_columns import cell, days_decision_to_treatment, met_31_days
from service.episodes.cwt_referral_items import ReferralItems, referral_items
from tests.support.cwt import START, day, pathway_row

EXAMPLE = Path(__file__).resolve().parents[2] / "fhir_profiles" / "examples" / "Bundle-referral.json"


def test_the_published_referral_gives_the_patient_and_the_metastatic_site() -> None:
    items = referral_items(json.loads(EXAMPLE.read_text(encoding="utf-8")))
    assert items.nhs_number == "9990042438"
    assert items.birth_date == "1958-03-14"
    assert items.metastatic_site == "Secondary malignant neoplasm of liver (SNOMED CT 94381002)"


ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
IPT_REFERRAL = {
    "entry": [
        {
            "fullUrl": "urn:uuid:sr",
            "resource": {
                "resourceType": "ServiceRequest",
                "extension": [
                    {
                        "url": "https://handover.nhs.example/fhir/StructureDefinition/patient-pathway-identifier",
                        "valueIdentifier": {
                            "value": "RM1000424242PPI",
                            "assigner": {"identifier": {"system": ODS, "value": "RM1"}},
                        },
                    }
                ],
                "requester": {"reference": "urn:uuid:role"},
                "category": [
                    {
                        "coding": [
                            {
                                "system": "https://fhir.nhs.uk/CodeSystem/NHSDataModelAndDictionary-treatment-function",
                                "code": "105",
                            }
                        ]
                    }
                ],
            },
        },
        {
            "fullUrl": "urn:uuid:patient",
            "resource": {
                "resourceType": "Patient",
                "identifier": [
                    {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990042438"},
                    {"system": "https://example.org/other", "value": "not-the-mr"},
                    {
                        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
                        "system": "https://fhir.rm1.nhs.example/Id/local-patient-identifier",
                        "value": "K424242",
                        "assigner": {"identifier": {"system": ODS, "value": "RM1"}},
                    },
                ],
                "birthDate": "1958-03-14",
                "generalPractitioner": [{"type": "Organization", "identifier": {"system": ODS, "value": "Y99001"}}],
            },
        },
        {
            "fullUrl": "urn:uuid:role",
            "resource": {"resourceType": "PractitionerRole", "practitioner": {"reference": "urn:uuid:doctor"}},
        },
        {
            "fullUrl": "urn:uuid:doctor",
            "resource": {
                "resourceType": "Practitioner",
                "identifier": [{"system": "https://fhir.hl7.org.uk/Id/gmc-number", "value": "7000001"}],
            },
        },
    ]
}


def test_the_ipt_items_of_a_cancer_referral_as_the_profile_maps_them() -> None:
    items = referral_items(IPT_REFERRAL)
    assert items == ReferralItems(
        nhs_number="9990042438",
        birth_date="1958-03-14",
        local_patient_identifier="K424242",
        local_patient_identifier_issuer="RM1",
        patient_pathway_identifier="RM1000424242PPI",
        patient_pathway_identifier_issuer="RM1",
        gp_practice="Y99001",
        referring_professional="7000001",
        treatment_function="105",
    )
    assert items.without_identity() == ReferralItems(
        gp_practice="Y99001", referring_professional="7000001", treatment_function="105"
    )


@pytest.mark.parametrize(
    "doc",
    [
        None,
        [],
        {"entry": "x"},
        {"entry": [1, {"resource": 2}]},
        {"entry": [{"resource": {"resourceType": "Condition", "code": 5}}]},
    ],
)
def test_an_odd_document_gives_blanks(doc: Any) -> None:
    assert referral_items(doc) == ReferralItems()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (True, "Y"),
        (False, "N"),
        (0.5, "0.5"),
        (1.0, "1"),
        (45, "45"),
        (date(2026, 12, 7), "2026-12-07"),
        ("J02.1", "J02.1"),
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+44 1603", "'+44 1603"),
        ("@SUM(A1)", "'@SUM(A1)"),
    ],
)
def test_cells_are_text_a_spreadsheet_never_runs(value: object, text: str) -> None:
    assert cell(value) == text


@pytest.mark.parametrize(
    ("treated", "adjustment", "days", "met"), [(31, 0, 31, True), (32, 0, 32, False), (34, 3, 31, True)]
)
def test_the_31_day_standard_counts_decision_to_treat_to_treatment_less_the_centres_adjustment(
    treated: int, adjustment: int, days: int, met: bool
) -> None:
    row = pathway_row("RM1", "RGT", 20, treated, adj_trt=adjustment, decision_to_treat_date=START)
    assert (days_decision_to_treatment(row), met_31_days(row)) == (days, met)
    assert days_decision_to_treatment(pathway_row("RM1", "RGT", 20, None, decision_to_treat_date=day(1))) is None
