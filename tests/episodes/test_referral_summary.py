"""Reading the patient and the referral from a referral Bundle for the care roles' pages (issue 25 items 2-3):
the example referral, a referral naming its primary tumour, and shapes the summary must survive."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

from service.episodes.referral_summary import summarise
from service.terminology import PROFILES_DIR

EXAMPLE = Path(PROFILES_DIR) / "examples" / "Bundle-referral.json"


def _example() -> dict[str, Any]:
    return dict(json.loads(EXAMPLE.read_text(encoding="utf-8")))


def test_the_example_referral_names_the_patient_question_diagnosis_and_referrer() -> None:
    summary = summarise(_example())
    assert summary.name == "Alex BLAKENEY"
    assert summary.nhs_number == "9990042438"
    assert summary.birth_date == date(1958, 3, 14)
    assert summary.question == "Local MDT: colorectal liver metastases, for SMDT opinion on resection."
    assert summary.diagnosis == "Secondary malignant neoplasm of liver"
    assert summary.referring_consultant == "Sam REFERRER"
    assert summary.primary_site == ""  # the example names no primary tumour


def test_the_primary_site_is_the_other_condition_not_the_metastasis() -> None:
    bundle = _example()
    primary = {
        "resourceType": "Condition",
        "id": "primary-1",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "363406005", "display": "Colon cancer"}]},
        "bodySite": [{"coding": [{"system": "http://snomed.info/sct", "code": "71854001", "display": "Colon"}]}],
    }
    bundle["entry"].append({"fullUrl": "urn:uuid:primary-1", "resource": primary})
    assert summarise(bundle).primary_site == "Colon"
    del primary["bodySite"]
    assert summarise(bundle).primary_site == "Colon cancer"


def test_odd_shapes_read_as_empty_never_raise() -> None:
    bundle = copy.deepcopy(_example())
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Patient":
            resource["name"] = "not a list"
            resource["birthDate"] = "1958-02-30"
        if resource["resourceType"] == "ServiceRequest":
            resource["note"] = [{"text": 7}, "text"]
            resource["requester"] = {"display": "Dr Named Only"}
    summary = summarise(bundle)
    assert (summary.name, summary.birth_date, summary.referring_consultant) == ("", None, "Dr Named Only")
    assert summarise({"entry": "nothing"}).nhs_number == ""
