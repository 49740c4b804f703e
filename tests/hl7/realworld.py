"""HL7 v2 messages in the shapes real systems send, written here for the tests (synthetic people, NHS numbers from
the 999 test range, invented names, GMC numbers and addresses). Each is in the style of a named source, not a copy:

- an NHS trust's Epic feed: v2.4, MSH-9 in two parts, PRD-1 a coded element with text, no key worker, the NHS
  number typed `HN` under `NHS`, DG1 with ICD-10, a Z-segment, escape sequences and non-ASCII text in NTE;
- a HAPI-built message: v2.5, MSH-9 in three parts, `^^^NHS^NH`, processing ID `T`, DG1 coded in SNOMED CT;
- Google's Simulated Hospital (UK defaults): v2.3, `NHSNBR^NHSNMBR`, birth date with a time, MRN first in PID-3;
- python-hl7's documentation examples: ADT^A03 with a bare OBX-3 `SUMMARY`;
- hl7apy's examples: ADT^A03 v2.5 with OBX-3 a coded element and FT text with `\\.br\\` and `\\F\\`;
- an MDM^T02 (no mapping: refused).
"""

from __future__ import annotations

NHS = {"epic": "9990091005", "hapi": "9990091013", "sim": "9990091021", "adt": "9990091048", "apy": "9990091056"}


def _message(*segments: str) -> str:
    return "\r".join(segments) + "\r"


EPIC_REFERRAL = _message(
    "MSH|^~\\&|EPIC|RM1|HANDOVER|RGT|20261205093000||REF^I12|EP0000123456|P|2.4|||AL|NE|GBR|UNICODE UTF-8",
    "RF1|P^Pending^HL70283|U^Urgent^HL70280|ONC^Oncology^L||O^Outpatient^HL70284|EPR7781234^RM1|20261120|20261120",
    "PRD|RP^Referring Provider^HL70286|Okonkwo-Hart^Priya^^^Dr|Colney Lane^^Norwich^^NR4 7UY||01603 286286^WPN||"
    "7034519^^^GMC",
    "PID|1||9990091005^^^NHS^HN~E4457812^^^EPI^MR||O'Leary-Smith^Siobhán^Anne^^Mrs||19610722|F|||"
    "12 Rose Lane^^Norwich^Norfolk^NR2 3AB^GBR^H",
    "PV1|1|O|ONC^^^RM1",
    "DG1|1|I10|C78.7^Secondary malignant neoplasm of liver^I10|Secondary malignant neoplasm of liver|20261101|F",
    "NTE|1|L|CT: 3 lesions, segments VI \\T\\ VII; CEA 45 \\S\\ rising.\\.br\\Local MDT 18/11: for SMDT opinion.",
    "ZRF|1|EPIC-ONC-PATHWAY|CWT-62",
)

HAPI_REFERRAL = _message(
    "MSH|^~\\&|HAPI_TEST|RM1|HANDOVER|RGT|20261205101010.123+0000||REF^I12^REF_I12|HAPI-0001|T|2.5|||AL|NE",
    "RF1|P^Pending^HL70283|R^Routine^HL70280|ONC^Oncology^L||O^Outpatient^HL70284|HAPI-REF-77^RM1|20261121",
    "PRD|RP|Achterberg^Lotte^^^Dr|||||7044021^^^GMC",
    "PRD|KW^Key worker^L|Lindqvist^Annika^^^Ms|||||7044022^^^GMC",
    "PID|1||9990091013^^^NHS^NH||Brennan^Ciaran||19550203|M",
    "DG1|1||94381002^Secondary malignant neoplasm of liver^SCT||20261115|W",
    "NTE|1||Liver-only disease \\F\\ for resection opinion",
)

SIMULATED_HOSPITAL_REFERRAL = _message(
    "MSH|^~\\&|SIMHOSP|RM1|HANDOVER|RGT|20261205131015||REF^I12|517|T|2.3|||AL||44|ASCII",
    "RF1|P||||O|SIM-REF-0001^RM1|20261122",
    "PRD|RP^Referring Provider^HL70286|Whittingham^Sylvia^^^Dr|||||7051234^^^GMC",
    "PID|1|3735064194^^^SIMULATOR MRN^MRN|3735064194^^^SIMULATOR MRN^MRN~9990091021^^^NHSNBR^NHSNMBR||"
    "Kinmonth^Joanna^Chelsea^^Ms^^CURRENT||19870624000000|F|||89 Example House^Handmaiden Street^Wembley^^"
    "FV75 4GJ^GBR^HOME||020 3614 5541^HOME",
    "PD1|||FAMILY PRACTICE^^12345",
    "DG1|1|I10|C18.7^Malignant neoplasm of sigmoid colon^I10||20261030|F",
)

REFERRALS = {"epic": EPIC_REFERRAL, "hapi": HAPI_REFERRAL, "sim": SIMULATED_HOSPITAL_REFERRAL}


def python_hl7_discharge(referral_identifier: str) -> str:
    """ADT^A03 as python-hl7's documentation writes messages: v2.3, OBX-3 bare (`SUMMARY`), TX text."""
    return _message(
        "MSH|^~\\&|GHH LAB|RGT|HANDOVER|RM1|20261205151500||ADT^A03|MSG00001|P|2.3",
        "EVN|A03|20261205151500",
        "PID|1||9990091048^^^NHS^NH||Testpatient^Robin||19600101|U",
        "PV1|1|I|W12^B3^1^RGT||||7100001^Fenwright^Morgan"
        + "|" * 37
        + "20261128|20261205"
        + "|" * 5
        + f"{referral_identifier}^^^RM1",
        "DG1|1|I10|C78.7^Secondary malignant neoplasm of liver^I10||20261128|F",
        "OBX|1|TX|SUMMARY||Right hemihepatectomy \\T\\ cholecystectomy.\\.br\\Uneventful recovery.||||||F",
        "OBX|2|TX|PLAN||Oncology review in 4 weeks.||||||F",
    )


def hl7apy_discharge(referral_identifier: str) -> str:
    """ADT^A03 in hl7apy's example style: v2.5, OBX-3 a coded element, FT text with escapes."""
    return _message(
        "MSH|^~\\&|HL7APY|RGT|HANDOVER|RM1|20261205160000||ADT^A03^ADT_A03|APY-0001|P|2.5",
        "EVN|A03|20261205160000",
        "PID|1||9990091056^^^NHS&2.16.840.1.113883.2.1.4.1&ISO^NH||Testpatient^Sam||19700505|M",
        "PV1|1|I|W12^B3^1^RGT||||7100001^Fenwright^Morgan"
        + "|" * 37
        + "20261129|20261205"
        + "|" * 5
        + f"{referral_identifier}^^^RM1",
        "OBX|1|FT|SUMMARY^Discharge summary^L||Segmentectomy V \\F\\ VI.\\.br\\Drain out day 3.||||||F",
    )


MDM_T02 = _message(
    "MSH|^~\\&|EPIC|RM1|HANDOVER|RGT|20261205170000||MDM^T02|MDM-0001|P|2.5",
    "EVN|T02|20261205170000",
    "PID|1||9990091005^^^NHS^NH||Testpatient^Alex||19580314|F",
    "TXA|1|DS|TX|20261205170000",
    "OBX|1|TX|SUMMARY||Clinic letter||||||F",
)
