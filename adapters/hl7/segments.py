"""Reading the segments of an EPR message the mappings need (PID, PRD, NTE, OBX, DG1) as decoded text, refusing
with the exact field (segment^sequence^field) whatever is missing or short; nothing here raises anything but
Hl7RefusalError, however short a segment is.

The identifiers and codes real feeds send are recognised: an NHS number as a PID-3 repetition of identifier type
`NH`, `HN` or `NHSNMBR` under an NHS assigning authority (`NHS`, `NHSNBR`, or the NHS number OID
2.16.840.1.113883.2.1.4.1; `NH` also with no authority); PRD-1 as a plain code (`RP`) or a coded element with
text (`RP^Referring Provider^HL70286`); OBX-3 as a bare code (`SUMMARY`) or a coded element.
"""

from __future__ import annotations

from dataclasses import dataclass

import hl7

from adapters.builders import SNOMED, Clinician
from adapters.hl7 import text
from adapters.hl7.errors import REQUIRED_FIELD_MISSING, TABLE_VALUE_NOT_FOUND, Hl7RefusalError

NHS_NUMBER_TYPES = {"NH", "HN", "NHSNMBR"}  # CX-5 identifier type codes feeds use for the NHS number
NHS_AUTHORITIES = {"NHS", "NHSNBR", "NHSNMBR"}  # CX-4.1 namespace ids of the NHS number's assigning authority
NHS_NUMBER_OID = "2.16.840.1.113883.2.1.4.1"  # CX-4.2 universal id of the NHS number
ICD10 = "http://hl7.org/fhir/sid/icd-10"
CODING_SYSTEMS = {  # DG1-3.3 (HL7 table 0396 and the names feeds use) → FHIR system
    "I10": ICD10,
    "ICD10": ICD10,
    "ICD-10": ICD10,
    "I10UK": ICD10,
    "SCT": SNOMED,
    "SNOMEDCT": SNOMED,
    "SNOMED": SNOMED,
    "SNOMED-CT": SNOMED,
}


def of(message: hl7.Message, name: str) -> list[hl7.Segment]:
    """Every `name` segment, in order (none: [])."""
    return [segment for segment in message if str(segment[0]) == name]


def value(segment: hl7.Segment, number: int, *, repeat: int = 1, component: int = 1, subcomponent: int = 1) -> str:
    """One decoded subcomponent of field `number` of `segment` ('' when the segment is shorter)."""
    if number >= len(segment):
        return ""
    return text.part(str(segment[number]), repeat, component, subcomponent)


def repetitions(segment: hl7.Segment, number: int) -> list[list[list[str]]]:
    """Field `number` as repetitions → components → subcomponents, decoded ([] when absent)."""
    if number >= len(segment) or not str(segment[number]):
        return []
    return [[[text.decode(s) for s in c] for c in r] for r in text.split(str(segment[number]))]


def lines_of(segment: hl7.Segment, number: int) -> list[str]:
    """A text field (FT, TX): each repetition decoded whole (a stray separator inside is kept as text)."""
    if number >= len(segment):
        return []
    return [text.decode(r) for r in str(segment[number]).split("~")]


def nhs_number(message: hl7.Message) -> str:
    """The NHS number among the PID-3 repetitions ('' when none is one)."""
    [pid, *_] = of(message, "PID")
    for repetition in repetitions(pid, 3):
        number, kind = _at(repetition, 1, 1), _at(repetition, 5, 1)
        authority = {_at(repetition, 4, 1).upper(), _at(repetition, 4, 2)} - {""}
        under_nhs = bool(authority & (NHS_AUTHORITIES | {NHS_NUMBER_OID}))
        if kind.upper() in NHS_NUMBER_TYPES and (under_nhs or (kind.upper() == "NH" and not authority)):
            return number
    return ""


def provider(message: hl7.Message, role: str) -> Clinician | None:
    """The clinician of the first PRD whose PRD-1 is `role` (None when there is none): PRD-2 name, PRD-7 GMC."""
    for index, prd in enumerate(of(message, "PRD"), start=1):
        if role not in {_at(r, 1, 1).upper() for r in repetitions(prd, 1)}:
            continue
        family, given = value(prd, 2, component=1), value(prd, 2, component=2)
        if not family:
            raise Hl7RefusalError(f"PRD^{index}^2", REQUIRED_FIELD_MISSING, f"PRD {role} needs the name in PRD-2")
        gmc = value(prd, 7, component=1)
        if not gmc:
            raise Hl7RefusalError(f"PRD^{index}^7", REQUIRED_FIELD_MISSING, f"PRD {role} needs the GMC number in PRD-7")
        return Clinician(family, given, gmc)
    return None


def required_provider(message: hl7.Message, role: str) -> Clinician:
    found = provider(message, role)
    if found is None:
        raise Hl7RefusalError("PRD^1^1", REQUIRED_FIELD_MISSING, f"no PRD segment with provider role {role}")
    return found


def notes(message: hl7.Message) -> str:
    """Every NTE-3 (repetitions one per line), decoded; an NTE without NTE-3 is refused by its place."""
    texts = []
    for index, nte in enumerate(of(message, "NTE"), start=1):
        comment = "\n".join(line for line in lines_of(nte, 3) if line)
        if not comment:
            raise Hl7RefusalError(f"NTE^{index}^3", REQUIRED_FIELD_MISSING, "an NTE segment without NTE-3 (comment)")
        texts.append(comment)
    return " ".join(texts)


def observations(message: hl7.Message) -> dict[str, list[str]]:
    """The text of each OBX by its OBX-3 identifier (OBX-2 must be TX, FT or ST, OBX-5 present)."""
    texts: dict[str, list[str]] = {}
    for index, obx in enumerate(of(message, "OBX"), start=1):
        if value(obx, 2) not in {"TX", "FT", "ST"}:
            raise Hl7RefusalError(f"OBX^{index}^2", TABLE_VALUE_NOT_FOUND, "OBX-2 must be TX, FT or ST (text)")
        identifier = value(obx, 3, component=1)
        if not identifier:
            raise Hl7RefusalError(f"OBX^{index}^3", REQUIRED_FIELD_MISSING, "OBX-3 (observation identifier) is missing")
        observed = "\n".join(line for line in lines_of(obx, 5) if line)
        if not observed:
            raise Hl7RefusalError(f"OBX^{index}^5", REQUIRED_FIELD_MISSING, "OBX-5 (the text) is missing")
        texts.setdefault(identifier.upper(), []).append(observed)
    return texts


@dataclass(frozen=True)
class Diagnosis:
    """DG1-3 as a FHIR CodeableConcept: a coding when the system is known, the text as given."""

    system: str | None
    code: str
    display: str

    def concept(self) -> dict[str, object]:
        concept: dict[str, object] = {}
        if self.system and self.code:
            coding = {"system": self.system, "code": self.code}
            concept["coding"] = [coding | ({"display": self.display} if self.display else {})]
        if self.display:
            concept["text"] = self.display
        return concept


def diagnosis(message: hl7.Message) -> Diagnosis | None:
    """The first DG1's diagnosis (DG1-3, else the DG1-4 description), None without DG1."""
    dg1s = of(message, "DG1")
    if not dg1s:
        return None
    dg1 = dg1s[0]
    code, display = value(dg1, 3, component=1), value(dg1, 3, component=2) or value(dg1, 4)
    system = CODING_SYSTEMS.get(value(dg1, 3, component=3).upper().replace(" ", ""))
    if not display and not (code and system):
        raise Hl7RefusalError(
            "DG1^1^3", REQUIRED_FIELD_MISSING, "DG1-3 needs a code with a known coding system (I10, SCT) or its text"
        )
    return Diagnosis(system, code, display)


def _at(repetition: list[list[str]], component: int, subcomponent: int) -> str:
    try:
        return repetition[component - 1][subcomponent - 1]
    except IndexError:
        return ""
