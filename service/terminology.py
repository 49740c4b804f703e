"""The Handover CodeSystems, read from fhir_profiles/ (the single source of truth), and identifier rules."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

PROFILES_DIR = Path(__file__).resolve().parent.parent / "fhir_profiles"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
RFC3986_SYSTEM = "urn:ietf:rfc:3986"

# ASCII only: no homoglyphs, full-width digits or zero-width characters slip through.
ODS_CODE = re.compile(r"[A-Z0-9]{3,10}", re.ASCII)
URN_UUID = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)


@dataclass(frozen=True)
class CodeSystem:
    url: str
    codes: frozenset[str]


def load_code_system(name: str, directory: Path = PROFILES_DIR) -> CodeSystem:
    """Load `CodeSystem-<name>.json` from the profiles directory."""
    doc = json.loads((directory / f"CodeSystem-{name}.json").read_text(encoding="utf-8"))
    return CodeSystem(doc["url"], frozenset(concept["code"] for concept in doc["concept"]))


def is_ods_code(value: object) -> bool:
    return isinstance(value, str) and ODS_CODE.fullmatch(value) is not None


def nhs_number_check_digit(first_nine: str) -> int | None:
    """The Modulus 11 check digit of nine ASCII digits; None when the remainder makes no valid NHS number."""
    total = sum(int(digit) * weight for digit, weight in zip(first_nine, range(10, 1, -1), strict=True))
    check = (11 - total % 11) % 11
    return None if check == 10 else check


def is_nhs_number(value: object) -> bool:
    """Ten ASCII digits whose tenth is the Modulus 11 check digit of the first nine."""
    if not isinstance(value, str) or re.fullmatch(r"[0-9]{10}", value, re.ASCII) is None:
        return False
    return nhs_number_check_digit(value[:9]) == int(value[9])
