"""Messages in the shapes real feeds send (tests/hl7/realworld.py) through the connector's mapping (issue 26,
item 1): PRD-1 as a coded element with text, no key worker, NHS numbers typed NH / HN / NHSNMBR under an NHS
authority, DG1 coded in ICD-10 or SNOMED CT, a bare OBX-3, escape sequences decoded once in and encoded once out."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.builders import KEY_WORKER_URL, LIVER_METASTASES
from adapters.hl7 import inbound, outbound
from adapters.hl7.errors import Hl7RefusalError
from tests.hl7 import realworld, samples
from tests.hl7.conftest import StartConnector
from tests.hl7.mllp import ack_code, send
from tests.support.hub import EVENT_SYSTEM, RunningHub
from tests.support.messages import NAMES

ICD10 = "http://hl7.org/fhir/sid/icd-10"


def mapped(message: str, ods: str = "RM1") -> dict[str, Any]:
    return inbound.to_bundle(inbound.parse(message.encode()), inbound.Trusts(ods, NAMES, EVENT_SYSTEM, lambda _: None))


def resource(bundle: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind)


def refusal(message: str, ods: str = "RM1") -> Hl7RefusalError:
    with pytest.raises(Hl7RefusalError) as raised:
        mapped(message, ods)
    return raised.value


@pytest.mark.parametrize("source", sorted(realworld.REFERRALS))
def test_each_real_world_referral_maps_with_its_own_nhs_number_referrer_and_diagnosis(source: str) -> None:
    bundle = mapped(realworld.REFERRALS[source])
    assert resource(bundle, "Patient")["identifier"][0]["value"] == realworld.NHS[source]
    request = resource(bundle, "ServiceRequest")
    requester = request["requester"]["reference"].removeprefix("urn:uuid:")
    role = next(e["resource"] for e in bundle["entry"] if e["resource"].get("id") == requester)
    assert role["resourceType"] == "PractitionerRole"
    condition = resource(bundle, "Condition")["code"]
    expected = {"epic": (ICD10, "C78.7"), "hapi": ("http://snomed.info/sct", "94381002"), "sim": (ICD10, "C18.7")}
    assert (condition["coding"][0]["system"], condition["coding"][0]["code"]) == expected[source]
    key_worker = [e for e in request.get("extension", []) if e["url"] == KEY_WORKER_URL]
    assert len(key_worker) == (1 if source == "hapi" else 0)  # PRD KW is optional, as the profile makes it
    assert (
        len([e for e in bundle["entry"] if e["resource"]["resourceType"] == "PractitionerRole"]) == len(key_worker) + 1
    )


def test_escape_sequences_reach_the_note_decoded_and_leave_for_the_epr_encoded_once() -> None:
    bundle = mapped(realworld.EPIC_REFERRAL)
    [note] = resource(bundle, "ServiceRequest")["note"]
    assert note["text"] == "CT: 3 lesions, segments VI & VII; CEA 45 ^ rising.\nLocal MDT 18/11: for SMDT opinion."
    bundle["entry"][0]["resource"]["sender"] = {"identifier": {"value": "RM1"}}
    out = outbound.for_epr(bundle, "RGT", {})
    assert out is not None
    [nte] = [s for s in out.decode().split("\r") if s.startswith("NTE")]
    assert (
        nte
        == "NTE|1||CT: 3 lesions, segments VI \\T\\ VII; CEA 45 \\S\\ rising.\\.br\\Local MDT 18/11: for SMDT opinion."
    )
    assert "\\E\\" not in nte


def test_without_dg1_the_condition_is_the_pathways_default() -> None:
    without = "\r".join(s for s in samples.referral(samples.nhs_number()).split("\r") if not s.startswith("DG1"))
    assert resource(mapped(without), "Condition")["code"]["coding"][0]["code"] == LIVER_METASTASES[0]


def test_a_dg1_without_code_or_text_is_refused_naming_dg1_3() -> None:
    message = realworld.HAPI_REFERRAL.replace("DG1|1||94381002^Secondary malignant neoplasm of liver^SCT|", "DG1|1|||")
    assert refusal(message).location == "DG1^1^3"


@pytest.mark.parametrize(
    "pid3",
    [
        "{n}^^^NHS^NH",
        "{n}^^^^NH",
        "{n}^^^NHS^HN",
        "{n}^^^NHSNBR^NHSNMBR",
        "K123^^^RM1^MR~{n}^^^NHS&2.16.840.1.113883.2.1.4.1&ISO^NHSNMBR",
        "{n}^^^&2.16.840.1.113883.2.1.4.1&ISO^HN",
    ],
)
def test_nhs_numbers_are_recognised_as_real_feeds_type_them(pid3: str) -> None:
    nhs = samples.nhs_number()
    message = samples.referral(nhs).replace(f"{nhs}^^^NHS^NH~K123456^^^RM1^MR", pid3.format(n=nhs))
    assert resource(mapped(message), "Patient")["identifier"][0]["value"] == nhs


@pytest.mark.parametrize("pid3", ["{n}^^^RM1^MR", "{n}^^^RM1^HN", "{n}^^^^NHSNMBR"])
def test_a_number_not_under_an_nhs_authority_is_not_taken_as_the_nhs_number(pid3: str) -> None:
    nhs = samples.nhs_number()
    message = samples.referral(nhs).replace(f"{nhs}^^^NHS^NH~K123456^^^RM1^MR", pid3.format(n=nhs))
    assert refusal(message).location == "PID^1^3"


@pytest.mark.parametrize("make", [realworld.python_hl7_discharge, realworld.hl7apy_discharge])
def test_a_discharge_with_a_bare_or_coded_obx3_summary_keeps_its_text(make: Any) -> None:
    bundle = mapped(make("REF-000123"), "RGT")
    [summary] = [s for s in resource(bundle, "Composition")["section"] if s["title"] == "Clinical summary"]
    assert ("hemihepatectomy &amp; chole" in summary["text"]["div"]) or (
        "Segmentectomy V | VI" in summary["text"]["div"]
    )


def test_an_unmapped_message_type_is_refused_naming_msh_9() -> None:
    assert refusal(realworld.MDM_T02).location == "MSH^1^9"


async def test_the_real_world_referrals_are_acknowledged_after_the_hubs_receipt(
    hub: RunningHub, start_connector: StartConnector
) -> None:
    async with start_connector("RM1") as (_connector, port):
        for message in realworld.REFERRALS.values():
            ack = await send(port, message)
            assert ack_code(ack) == "AA", str(ack)
    assert len(await hub.trust("RGT").inbox()) == len(realworld.REFERRALS)
