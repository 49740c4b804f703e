"""What a validated message says about its episode's Cancer Waiting Times dates (CONTRACT section 9).

A cancer pathway referral (one with `cancer-pathway-start-date`) gives the decision to refer date, the 28-day Faster
Diagnosis end date where recorded, and the referring trust's adjustment days; an accepted SMDT outcome the decision
to treat date; a discharge summary the first definitive treatment (its Procedure's date and OPCS-4 code) and the
centre's adjustment days. The profiles (fhir_profiles/README.md) have already checked that each is well formed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from service.validation.bundle import BundleIndex

LONDON = ZoneInfo("Europe/London")
_BASE = "https://handover.nhs.example/fhir/StructureDefinition/"
DECISION_TO_REFER_URL = _BASE + "decision-to-refer-date"
FASTER_DIAGNOSIS_URL = _BASE + "faster-diagnosis-date"
ADJUSTMENT_URL = _BASE + "waiting-time-adjustment"
DECISION_TO_TREAT_URL = _BASE + "decision-to-treat-date"
FIRST_TREATMENT_URL = _BASE + "first-definitive-treatment"
OPCS4_SYSTEM = "http://fhir.hl7.org.uk/CodeSystem/OPCS-4"


@dataclass(frozen=True)
class CwtItems:
    """The CWT items one message gives (None or 0: it does not give that item)."""

    decision_to_refer: date | None = None
    faster_diagnosis: date | None = None
    adjustment_days_referring: int | None = None
    decision_to_treat: date | None = None
    treatment_date: date | None = None
    treatment_opcs4: str | None = None
    adjustment_days_treating: int | None = None

    @property
    def empty(self) -> bool:
        return self == CwtItems()


def london_date(moment: datetime) -> date:
    """The Europe/London calendar date of an instant (the date CWT counts in)."""
    return moment.astimezone(LONDON).date()


def read_cwt_items(index: BundleIndex, event: str, focus: dict[str, Any]) -> CwtItems:
    """The CWT items of a message (its one index) whose MessageHeader focus is `focus`."""
    if event == "referral" and focus.get("resourceType") == "ServiceRequest":
        return CwtItems(
            decision_to_refer=_date(_extension(focus, DECISION_TO_REFER_URL, "valueDate")),
            faster_diagnosis=_date(_extension(focus, FASTER_DIAGNOSIS_URL, "valueDate")),
            adjustment_days_referring=_days(_extension(focus, ADJUSTMENT_URL, "valueUnsignedInt")),
        )
    if event == "referral-outcome":
        return CwtItems(decision_to_treat=_date(_extension(focus, DECISION_TO_TREAT_URL, "valueDate")))
    if event == "discharge-summary":
        procedure = index.target(_extension(focus, FIRST_TREATMENT_URL, "valueReference"))
        if procedure is None:
            return CwtItems()
        return CwtItems(
            treatment_date=_performed(procedure),
            treatment_opcs4=_opcs4(procedure),
            adjustment_days_treating=_days(_extension(focus, ADJUSTMENT_URL, "valueUnsignedInt")),
        )
    return CwtItems()


def focus_of(header: dict[str, Any], index: BundleIndex) -> dict[str, Any]:
    """The MessageHeader's first focus resource ({} if it has none in the Bundle)."""
    return index.target((header.get("focus") or [None])[0]) or {}


def _extension(resource: dict[str, Any], url: str, value: str) -> Any:
    for extension in resource.get("extension", []):
        if isinstance(extension, dict) and extension.get("url") == url:
            return extension.get(value)
    return None


def _date(value: Any) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) and len(value) == 10 else None


def _days(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _performed(procedure: dict[str, Any]) -> date | None:
    """The treatment date: performedDateTime, or the start of performedPeriod; a time of day counts by its
    Europe/London date."""
    value = procedure.get("performedDateTime") or (procedure.get("performedPeriod") or {}).get("start")
    if not isinstance(value, str) or len(value) < 10:
        return None
    if len(value) == 10:
        return date.fromisoformat(value)
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return london_date(moment) if moment.tzinfo else moment.date()


def _opcs4(procedure: dict[str, Any]) -> str | None:
    for coding in (procedure.get("code") or {}).get("coding", []):
        if isinstance(coding, dict) and coding.get("system") == OPCS4_SYSTEM and isinstance(coding.get("code"), str):
            return str(coding["code"])
    return None
