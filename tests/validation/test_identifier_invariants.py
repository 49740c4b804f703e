"""The NHS number and ODS code rules live in the identifier profiles, not in code: Modulus 11 as a FHIRPath invariant,
the ODS format as the standard regex extension. They must agree exactly with the hub's own definitions in
service/terminology.py, for any string."""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from service.terminology import is_nhs_number, is_ods_code
from service.validation import load_validator
from service.validation.fhirpath import Invariant

DIGITS = "0123456789\uff10\uff11\uff19\u0660\u0967"
ODS_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcz \n\u0422\u0410\uff32"


PROFILES = "https://handover.nhs.example/fhir/StructureDefinition/"


def invariant(profile: str, key: str) -> Invariant:
    rule = load_validator().conformance.profiles[PROFILES + profile].root.rule
    assert rule is not None
    return next(i for i in rule.invariants if i.key == key)


def ods_format() -> re.Pattern[str]:
    rule = load_validator().conformance.profiles[PROFILES + "handover-ods-code"].root.children["value"].rule
    assert rule is not None and rule.regex is not None
    return rule.regex


NHS = invariant("handover-nhs-number", "hov-nhs-1")
ODS = ods_format()


@given(st.text(alphabet=DIGITS + "\n -", min_size=0, max_size=12) | st.from_regex(r"999[0-9]{7}", fullmatch=True))
@settings(max_examples=500, deadline=None)
@example("9990042436")
@example("9990042421")
@example("999004243\n")
@example("")
def test_nhs_number_invariant_agrees_with_modulus_11(value: str) -> None:
    identifier = {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": value}
    assert NHS.holds(identifier, identifier) is is_nhs_number(value)


@given(st.text(alphabet=ODS_CHARS, min_size=0, max_size=12))
@settings(max_examples=500, deadline=None)
@example("RGT")
@example("RGT\n")
@example("RG\u0422")
@example("R0A1234567")
@example("R0A12345678")
def test_ods_invariant_agrees_with_the_ods_code_format(value: str) -> None:
    assert (ODS.fullmatch(value) is not None) is is_ods_code(value)
