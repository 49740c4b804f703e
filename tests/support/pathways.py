"""One synthetic patient's pathway between a referring trust and the centre (NHS numbers from the 999 range)."""

from __future__ import annotations

from adapters import builders
from adapters.pathway import Pathway
from tests.support.hub import EVENT_SYSTEM
from tests.support.messages import NAMES


def story_for(seed: int, *, referrer: str = "RM1") -> Pathway:
    patient = builders.SyntheticPatient(
        builders.synthetic_nhs_number(seed), "Testpatient", "Alex", "1958-03-14", "female"
    )
    return Pathway(
        EVENT_SYSTEM,
        referrer,
        NAMES.get(referrer, referrer),
        "RGT",
        NAMES["RGT"],
        patient,
        builders.Clinician("Referrer", "Sam", "7000001"),
        builders.Clinician("Keyworker", "Jo", "7000002"),
    )
