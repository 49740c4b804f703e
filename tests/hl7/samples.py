"""HL7 v2.5 messages in the shapes trust EPRs send, written from the v2.5 definitions; synthetic people only
(NHS numbers from the 999 test range, invented names and GMC numbers)."""

from __future__ import annotations

import itertools
import uuid

from adapters import builders

_seeds = itertools.count(7000)


def nhs_number() -> str:
    return builders.synthetic_nhs_number(next(_seeds))


def control_id() -> str:
    return uuid.uuid4().hex[:20]


def _msh(kind: str, sender: str, receiver: str, control: str) -> str:
    return (
        f"MSH|^~\\&|LORENZO|{sender}|HANDOVER|{receiver}|20261128101500||{kind}|{control}|P|2.5|||AL|NE||UNICODE UTF-8"
    )


def _pid(nhs: str) -> str:
    address = "1 Example Street^^Norwich^^NR1 1AA"
    return f"PID|1||{nhs}^^^NHS^NH~K123456^^^RM1^MR||Testpatient^Alex^^^Ms||19580314|F|||{address}"


def referral(nhs: str, *, sender: str = "RM1", receiver: str = "RGT", local: str = "", control: str = "") -> str:
    """REF^I12: local MDT → centre SMDT, RF1-6 the EPR's own referral number."""
    return (
        "\r".join(
            [
                _msh("REF^I12^REF_I12", sender, receiver, control or control_id()),
                "RF1|P^Pending^HL70283|R^Routine^HL70280|Hospital^Hospital^HL70281||O^Outpatient^HL70284|"
                f"{local or control_id()}^{sender}|20261128|||O^Provider ordered^HL70336",
                "PRD|RP|Referrer^Sam^^^Dr|||||7000001^^^GMC",
                "PRD|KW|Keyworker^Jo|||||7000002^^^GMC",
                "PRD|RT|Fenwright^Morgan^^^Mr|||||7100001^^^GMC",
                _pid(nhs),
                "DG1|1||94381002^Secondary malignant neoplasm of liver^SCT||20261101|F",
                "NTE|1||Local MDT: colorectal liver metastases, for SMDT opinion on resection.",
            ]
        )
        + "\r"
    )


def transfer(nhs: str, referral_identifier: str, *, sender: str = "RM1", receiver: str = "RGT") -> str:
    """REF^I12 with RF1-3 TOC: the local clinician (PRD RP) hands the patient to the centre's (PRD RT)."""
    return (
        "\r".join(
            [
                _msh("REF^I12^REF_I12", sender, receiver, control_id()),
                f"RF1|P||TOC^Transfer of care^L|||{referral_identifier}^{sender}|20261128",
                "PRD|RP|Referrer^Sam|||||7000001^^^GMC",
                "PRD|RT|Fenwright^Morgan|||||7100001^^^GMC",
                _pid(nhs),
            ]
        )
        + "\r"
    )


def transfer_answer(
    nhs: str, task_identifier: str, *, accepted: bool = True, sender: str = "RM1", receiver: str = "RGT"
) -> str:
    """RRI^I12 from the EPR: the named clinician accepts (A) or rejects (R) a transfer of care it received."""
    segments = [
        _msh("RRI^I12^RRI_I12", sender, receiver, control_id()),
        f"RF1|{'A' if accepted else 'R'}||TOC|||{task_identifier}",
        _pid(nhs),
    ]
    if not accepted:
        segments.append("NTE|1||Named clinician on leave.")
    return "\r".join(segments) + "\r"


def discharge(nhs: str, referral_identifier: str, *, sender: str = "RGT", receiver: str = "RM1") -> str:
    """ADT^A03 with the diagnosis in DG1 (ICD-10) and the discharge summary's text in OBX (OBX-3 SUMMARY, PLAN,
    MEDICATION)."""
    return (
        "\r".join(
            [
                _msh("ADT^A03^ADT_A03", sender, receiver, control_id()),
                "EVN|A03|20261128101500",
                _pid(nhs),
                "PV1|1|I|W12^B3^1^RGT||||7100001^Fenwright^Morgan"
                + "|" * 37
                + "20261122|20261128"
                + "|" * 5
                + f"{referral_identifier}^^^RM1",
                "DG1|1|I10|C78.7^Secondary malignant neoplasm of liver^I10||20261122|F",
                "OBX|1|TX|SUMMARY^Discharge summary^L||Right hemihepatectomy; uneventful recovery.||||||F",
                "OBX|2|TX|PLAN^Plan^L||Oncology review in 4 weeks.||||||F",
                "OBX|3|TX|MEDICATION^Medication^L||Paracetamol 1 g four times daily for 5 days||||||F",
            ]
        )
        + "\r"
    )
