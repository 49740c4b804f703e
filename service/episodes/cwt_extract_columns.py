"""The columns of the two cancer extracts, one row per pathway: `cwt` (named after the Cancer Waiting Times and
Inter-Provider Transfer data items) and `cosd` (headed by COSD item numbers where the hub holds the item).

Pure: a pathway's episode facts, its allocation and the items read from its referral in, a list of cells out.
Identity columns (NHS number, local patient identifier, date of birth, patient pathway identifier) exist only in
an identifiable extract; a
pseudonymised one carries the hub's keyed pseudonym of the NHS number instead. Where each value comes from:

* dates on the episode (migration 0013) as recorded from signed messages: clock start, decision to refer, IPT
  received, decision to treat, first definitive treatment, Faster Diagnosis end, adjustments, OPCS-4 procedure;
* CR0230 date first seen: the Europe/London date the centre accepted the transfer of care (the patient at the
  centre), the first date the hub knows the treating provider saw the patient;
* CR0430 MDT discussion date: the Europe/London date of the SMDT's first outcome message;
* CR6970 metastatic site: the referral's Condition (SNOMED CT); CR2050: the key worker the referral names;
* the IPT items the episode does not keep (GP practice, local patient identifier, patient pathway identifier,
  referring professional, treatment function): the referral that completed the data set
  (service/episodes/cwt_referral_items.py).

Cells are text: dates YYYY-MM-DD, flags Y / N, blank when unknown; free text that a spreadsheet would run as a
formula is prefixed with an apostrophe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from service.episodes.cwt_allocation import Allocation
from service.episodes.cwt_referral_items import ReferralItems
from service.store.cwt_reads import CwtPathwayRow

DECISION_TO_TREAT_TARGET_DAYS = 31
PSEUDONYM_COLUMN = "NHS NUMBER (PSEUDONYMISED)"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ExtractPathway:
    row: CwtPathwayRow
    allocation: Allocation
    items: ReferralItems


Column = tuple[str, Callable[[ExtractPathway], object]]
NameOf = Callable[[str], str]


def _identity_columns(cosd: bool) -> list[Column]:
    """NHS number, local patient identifier (with its issuer), date of birth, and in the CWT extract the patient
    pathway identifier (with its issuer): only in an identifiable extract."""
    prefix = ("CR0010 ", "CR0020 ", "CR0100 ") if cosd else ("", "", "")
    columns: list[Column] = [
        (f"{prefix[0]}NHS NUMBER", lambda p: p.items.nhs_number),
        (f"{prefix[1]}LOCAL PATIENT IDENTIFIER", lambda p: p.items.local_patient_identifier),
        ("ORGANISATION CODE (LOCAL PATIENT IDENTIFIER)", lambda p: p.items.local_patient_identifier_issuer),
        (f"{prefix[2]}PERSON BIRTH DATE", lambda p: p.items.birth_date),
    ]
    if not cosd:
        columns += [
            ("PATIENT PATHWAY IDENTIFIER", lambda p: p.items.patient_pathway_identifier),
            (
                "ORGANISATION IDENTIFIER (PATIENT PATHWAY IDENTIFIER ISSUER)",
                lambda p: p.items.patient_pathway_identifier_issuer,
            ),
        ]
    return columns


def _pseudonym_columns() -> list[Column]:
    return [(PSEUDONYM_COLUMN, lambda p: p.row.nhs_number_hmac)]


def _providers(name_of: NameOf) -> list[Column]:
    return [
        ("ORGANISATION IDENTIFIER (REFERRING PROVIDER)", lambda p: p.row.referring),
        ("ORGANISATION NAME (REFERRING PROVIDER)", lambda p: name_of(p.row.referring)),
        ("ORGANISATION IDENTIFIER (TREATING PROVIDER)", lambda p: p.row.treating),
        ("ORGANISATION NAME (TREATING PROVIDER)", lambda p: name_of(p.row.treating)),
    ]


def cwt_columns(*, identifiable: bool, name_of: NameOf) -> list[Column]:
    """The CWT extract's columns: the patient, the IPT data items, the dates of the pathway, the days in each
    phase against its target and the breach allocation."""
    return [
        *(_identity_columns(cosd=False) if identifiable else _pseudonym_columns()),
        ("HANDOVER EPISODE IDENTIFIER", lambda p: p.row.episode_id),
        ("REFERRAL IDENTIFIER", lambda p: p.row.referral_identifier),
        ("GENERAL MEDICAL PRACTICE CODE (PATIENT REGISTRATION)", lambda p: p.items.gp_practice),
        *_providers(name_of),
        ("REFERRING CARE PROFESSIONAL (IDENTIFIER)", lambda p: p.items.referring_professional),
        ("TREATMENT FUNCTION CODE", lambda p: p.items.treatment_function),
        ("DECISION TO REFER DATE", lambda p: p.row.decision_to_refer_date),
        ("CANCER REFERRAL TO TREATMENT PERIOD START DATE", lambda p: p.row.clock_start),
        ("INTER-PROVIDER TRANSFER RECEIVED DATE", lambda p: p.row.ipt_received_date),
        ("WAITING TIME ADJUSTMENT BEFORE TRANSFER (DAYS)", lambda p: p.row.adjustment_days_referring),
        ("WAITING TIME ADJUSTMENT AFTER TRANSFER (DAYS)", lambda p: p.row.adjustment_days_treating),
        ("CANCER FASTER DIAGNOSIS PATHWAY END DATE", lambda p: p.row.faster_diagnosis_date),
        ("CANCER TREATMENT PERIOD START DATE", lambda p: p.row.decision_to_treat_date),
        ("TREATMENT START DATE (CANCER)", lambda p: p.row.treatment_date),
        ("PRIMARY PROCEDURE (OPCS)", lambda p: p.row.treatment_opcs4),
        ("DAYS TO TRANSFER (TARGET 38)", lambda p: p.allocation.d38),
        ("DAYS FROM TRANSFER TO TREATMENT (TARGET 24)", lambda p: p.allocation.d24),
        ("DAYS TO TREATMENT (TARGET 62)", lambda p: p.allocation.d62),
        ("DAYS FROM DECISION TO TREAT TO TREATMENT (TARGET 31)", lambda p: days_decision_to_treatment(p.row)),
        ("TRANSFERRED BY DAY 38", lambda p: p.allocation.transferred_by_day_38),
        ("TREATED WITHIN 24 DAYS OF TRANSFER", lambda p: p.allocation.treated_within_24_days),
        ("62 DAY STANDARD MET", lambda p: p.allocation.met_62_days),
        ("31 DAY STANDARD MET", lambda p: met_31_days(p.row)),
        ("BREACH ALLOCATION RULE", lambda p: p.allocation.rule),
        ("BREACH ALLOCATION SHARE (REFERRING PROVIDER)", lambda p: _share(p, p.row.referring)),
        ("BREACH ALLOCATION SHARE (TREATING PROVIDER)", lambda p: p.allocation.shares.get(p.row.treating)),
    ]


def cosd_columns(*, identifiable: bool, name_of: NameOf) -> list[Column]:
    """The COSD extract's columns, headed by the COSD item number where the hub holds the item."""
    return [
        *(_identity_columns(cosd=True) if identifiable else _pseudonym_columns()),
        ("HANDOVER EPISODE IDENTIFIER", lambda p: p.row.episode_id),
        *_providers(name_of),
        ("CANCER REFERRAL TO TREATMENT PERIOD START DATE", lambda p: p.row.clock_start),
        ("CR0230 DATE FIRST SEEN", lambda p: p.row.first_at_centre_date),
        ("CR0430 MULTIDISCIPLINARY TEAM DISCUSSION DATE (CANCER)", lambda p: p.row.first_smdt_outcome_date),
        ("CANCER TREATMENT PERIOD START DATE", lambda p: p.row.decision_to_treat_date),
        ("CR1370 TREATMENT START DATE (CANCER)", lambda p: p.row.treatment_date),
        ("PRIMARY PROCEDURE (OPCS)", lambda p: p.row.treatment_opcs4),
        ("CR6970 METASTATIC SITE", lambda p: p.items.metastatic_site),
        ("CR2050 CLINICAL NURSE SPECIALIST (KEY WORKER)", key_worker),
    ]


def _share(p: ExtractPathway, ods: str) -> float | None:
    """A one-provider pathway's share is the treating provider's alone (not shown twice)."""
    return None if p.row.referring == p.row.treating else p.allocation.shares.get(ods)


def key_worker(p: ExtractPathway) -> str | None:
    row = p.row
    if not row.key_worker_name:
        return None
    held = [row.key_worker_name, row.key_worker_identifier, row.key_worker_ods]
    return ", ".join(part for part in held if part)


def days_decision_to_treatment(row: CwtPathwayRow) -> int | None:
    """The 31-day standard's days, as the episode's `cancer_waiting_times` counts them: decision to treat to first
    definitive treatment, less the treating provider's adjustment."""
    if row.decision_to_treat_date is None or row.treatment_date is None:
        return None
    return (row.treatment_date - row.decision_to_treat_date).days - row.adjustment_days_treating


def met_31_days(row: CwtPathwayRow) -> bool | None:
    days = days_decision_to_treatment(row)
    return None if days is None else days <= DECISION_TO_TREAT_TARGET_DAYS


def cells(columns: Sequence[Column], pathway: ExtractPathway) -> list[str]:
    """One spreadsheet row: each column's value as text."""
    return [cell(value(pathway)) for _, value in columns]


def cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (int, date)):
        return value.isoformat() if isinstance(value, date) else str(value)
    text = str(value)
    return f"'{text}" if text.startswith(_FORMULA_START) else text
