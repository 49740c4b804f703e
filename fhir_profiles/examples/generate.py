"""Generate the published example messages in this directory (run by hand; see ../README.md).

    .venv/bin/python fhir_profiles/examples/generate.py           # write the files
    .venv/bin/python fhir_profiles/examples/generate.py --check   # exit 1 if any file would change

Valid examples (`Bundle-<event>.json`) are built with adapters/builders.py from synthetic data, with fixed
timestamps and UUIDs made deterministic (uuid5 of the file name and their order of appearance). Each invalid
example (`invalid/Bundle-<name>.json`) is a valid one with one deliberate fault, published beside the
OperationOutcome issue it must produce (`invalid/OperationOutcome-<name>.json`): error code and expression.
The script refuses to write an invalid example that does not produce its issue, or a valid one with errors.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from adapters import builders
from adapters.cwt_items import PATHWAY_ID_URL, IptDataSet, Treatment
from adapters.discharge import Stay, discharge_summary
from service.errors import Code, Issue, operation_outcome
from service.validation import load_validator

HERE = Path(__file__).resolve().parent
WHEN = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
EVENTS = "https://handover.nhs.example/fhir/CodeSystem/handover-event"
BARS_EVENTS = "https://fhir.nhs.uk/CodeSystem/message-events-bars"
NAMESPACE = uuid.UUID("6f1d3c5e-2b4a-4e8f-9c1d-0a7b5e3f2d10")
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
NNUH, CUH = (
    ("RM1", "Norfolk and Norwich University Hospitals NHS Foundation Trust"),
    (
        "RGT",
        "Cambridge University Hospitals NHS Foundation Trust",
    ),
)
PATIENT = builders.SyntheticPatient(builders.synthetic_nhs_number(4242), "Blakeney", "Alex", "1958-03-14", "female")
REFERRER = builders.Clinician("Referrer", "Sam", "7000001")
KEY_WORKER = builders.Clinician("Keyworker", "Jo", "7000002")
SURGEON = builders.Clinician("Fenwright", "Morgan", "7100001")
Mutation = Callable[[dict[str, Any]], object]


def valid_examples() -> dict[str, dict[str, Any]]:
    """One valid message per event, as a trust would build it (the demo scenario's shapes)."""
    referral = builders.referral(
        EVENTS,
        sender_ods=NNUH[0],
        sender_name=NNUH[1],
        receiver_ods=CUH[0],
        receiver_name=CUH[1],
        patient=PATIENT,
        referrer=REFERRER,
        key_worker=KEY_WORKER,
        timestamp=WHEN,
        pathway_start=date(2026, 10, 12),
        ipt=IptDataSet(
            local_patient_id="K424242",
            gp_practice_ods="Y99001",
            pathway_id="RM1000424242PPI",
            pathway_issuer_ods=NNUH[0],
            decision_to_refer=date(2026, 11, 20),
            adjustment_days=0,
            faster_diagnosis=date(2026, 11, 6),
        ),
    )
    referral_id = referral["entry"][1]["resource"]["identifier"][0]["value"]
    outcome = builders.referral_outcome(
        EVENTS,
        *CUH,
        referral,
        decision="accepted",
        plan="Accepted for right hemihepatectomy at CUH; pre-assessment clinic in two weeks.",
        decided_by=SURGEON,
        timestamp=WHEN,
        decision_to_treat=date(2026, 11, 24),
    )
    transfer = builders.transfer_of_care(
        EVENTS,
        sender_ods=NNUH[0],
        sender_name=NNUH[1],
        receiver_ods=CUH[0],
        receiver_name=CUH[1],
        patient=PATIENT,
        from_clinician=REFERRER,
        to_clinician=SURGEON,
        referral_identifier=referral_id,
        timestamp=WHEN,
    )
    response = builders.transfer_of_care_response(EVENTS, *CUH, transfer, accepted=True, timestamp=WHEN)
    stay = Stay(
        admitted=date(2026, 12, 1),
        discharged=date(2026, 12, 8),
        summary="Right hemihepatectomy on day 1; uneventful recovery.",
        plan="Surgical clinic in six weeks; local oncology to consider adjuvant chemotherapy.",
        medications=("Paracetamol 1 g four times a day for 5 days",),
        procedure=("35336005", "Hepatectomy"),
    )
    summary = discharge_summary(
        EVENTS,
        sender_ods=CUH[0],
        sender_name=CUH[1],
        receiver_ods=NNUH[0],
        receiver_name=NNUH[1],
        patient=PATIENT,
        author=SURGEON,
        referral_identifier=referral_id,
        stay=stay,
        timestamp=WHEN,
        treatment=Treatment(date(2026, 12, 2), adjustment_days=0),
    )
    acknowledgement = builders.acknowledgement(EVENTS, *CUH, referral, timestamp=WHEN)
    return {
        **_in_bars_form(referral, outcome),
        "referral": referral,
        "referral-outcome": outcome,
        "transfer-of-care": transfer,
        "transfer-of-care-response": response,
        "discharge-summary": summary,
        "acknowledgement": acknowledgement,
    }


def _in_bars_form(referral: dict[str, Any], outcome: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The referral and its outcome as a trust speaking BaRS sends them: BaRS events, and the referral's sender and
    receiver named only by reference to their Organization entries."""
    request, response = copy.deepcopy(referral), copy.deepcopy(outcome)
    header = request["entry"][0]["resource"]
    header["eventCoding"] = {"system": BARS_EVENTS, "code": "servicerequest-request"}
    header["sender"].pop("identifier")
    receiver = next(e for e in request["entry"] if e["resource"].get("name") == CUH[1])
    header["destination"][0]["receiver"] = {"reference": receiver["fullUrl"]}
    request["entry"][1]["resource"]["intent"] = "plan"  # as BaRS examples have it
    response["entry"][0]["resource"]["eventCoding"] = {"system": BARS_EVENTS, "code": "servicerequest-response"}
    return {"bars-servicerequest-request": request, "bars-servicerequest-response": response}


def _resource(index: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda bundle: bundle["entry"][index]["resource"]


HEADER, FOCUS, THIRD = _resource(0), _resource(1), _resource(2)
# name: (valid example, the fault, the expression of the issue it must produce)
INVALID: dict[str, tuple[str, Mutation, str]] = {
    "referral-bad-nhs-number": (
        "referral",
        lambda b: THIRD(b)["identifier"][0].update(value="9990042421"),
        "Bundle.entry[2].resource.identifier[0]",
    ),
    "referral-no-birth-date": ("referral", lambda b: THIRD(b).pop("birthDate"), "Bundle.entry[2].resource.birthDate"),
    "referral-unknown-gender": (
        "referral",
        lambda b: THIRD(b).update(gender="not-stated"),
        "Bundle.entry[2].resource.gender",
    ),
    "referral-focus-is-patient": (
        "referral",
        lambda b: HEADER(b)["focus"][0].update(reference=b["entry"][2]["fullUrl"]),
        "Bundle.entry[0].resource.focus[0]",
    ),
    "referral-dangling-subject": (
        "referral",
        lambda b: FOCUS(b)["subject"].update(reference="urn:uuid:00000000-0000-4000-8000-000000000000"),
        "Bundle.entry[1].resource.subject.reference",
    ),
    "referral-subject-is-condition": (
        "referral",
        lambda b: FOCUS(b)["subject"].update(reference=b["entry"][3]["fullUrl"]),
        "Bundle.entry[1].resource.subject",
    ),
    "referral-addressed-to-sender": (
        "referral",
        lambda b: HEADER(b)["destination"][0]["receiver"]["identifier"].update(value="RM1"),
        "Bundle.entry[0].resource",
    ),
    "referral-lower-case-ods": (
        "referral",
        lambda b: HEADER(b)["destination"][0]["receiver"]["identifier"].update(value="rgt"),
        "Bundle.entry[0].resource.destination[0].receiver.identifier.value",
    ),
    "referral-no-reason": ("referral", lambda b: FOCUS(b).pop("reasonReference"), "Bundle.entry[1].resource"),
    "referral-full-url-not-uuid": (
        "referral",
        lambda b: b["entry"][7].update(fullUrl="Practitioner/7"),
        "Bundle.entry[7].fullUrl",
    ),
    "referral-two-patients": (
        "referral",
        lambda b: b["entry"].append(
            {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001", "resource": copy.deepcopy(THIRD(b))}
        ),
        "Bundle.entry[10]",
    ),
    "referral-cancer-pathway-without-pathway-identifier": (
        "referral",
        lambda b: FOCUS(b).update(extension=[e for e in FOCUS(b)["extension"] if e["url"] != PATHWAY_ID_URL]),
        "Bundle.entry[1].resource",
    ),
    "referral-outcome-declined-without-reason": (
        "referral-outcome",
        lambda b: FOCUS(b)["businessStatus"]["coding"][0].update(code="declined", display="Declined"),
        "Bundle.entry[1].resource",
    ),
    "referral-outcome-unknown-decision": (
        "referral-outcome",
        lambda b: FOCUS(b)["businessStatus"]["coding"][0].update(code="maybe", display="Maybe"),
        "Bundle.entry[1].resource.businessStatus",
    ),
    "transfer-of-care-same-organisation": (
        "transfer-of-care",
        lambda b: FOCUS(b)["owner"].update(reference=FOCUS(b)["requester"]["reference"]),
        "Bundle.entry[1].resource",
    ),
    "transfer-of-care-response-rejected-without-reason": (
        "transfer-of-care-response",
        lambda b: FOCUS(b).update(status="rejected"),
        "Bundle.entry[1].resource",
    ),
    "transfer-of-care-response-still-requested": (
        "transfer-of-care-response",
        lambda b: FOCUS(b).update(status="requested"),
        "Bundle.entry[1].resource.status",
    ),
    "discharge-summary-without-plan": (
        "discharge-summary",
        lambda b: FOCUS(b).update(
            section=[s for s in FOCUS(b)["section"] if s["code"]["coding"][0]["code"] != "887201000000105"]
        ),
        "Bundle.entry[1].resource.section",
    ),
    "discharge-summary-treatment-not-opcs4": (
        "discharge-summary",
        lambda b: next(e["resource"] for e in b["entry"] if e["resource"]["resourceType"] == "Procedure")["code"][
            "coding"
        ][0].update(system="http://snomed.info/sct", code="35336005", display="Hepatectomy"),
        "Bundle.entry[5].resource",
    ),
    "discharge-summary-wrong-type": (
        "discharge-summary",
        lambda b: FOCUS(b)["type"]["coding"][0].update(code="371531000", display="Report of clinical encounter"),
        "Bundle.entry[1].resource.type",
    ),
    "bars-servicerequest-request-sender-without-ods": (
        "bars-servicerequest-request",
        lambda b: next(e for e in b["entry"] if e["resource"].get("name") == NNUH[1])["resource"].pop("identifier"),
        "Bundle.entry[0].resource",
    ),
    "acknowledgement-without-response": (
        "acknowledgement",
        lambda b: HEADER(b).pop("response"),
        "Bundle.entry[0].resource.response",
    ),
}


def deterministic(name: str, doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with every UUID replaced by uuid5(NAMESPACE, name:n), n its order of first appearance."""
    text, seen = json.dumps(doc, ensure_ascii=False), {}
    for match in UUID_TEXT.findall(text):
        seen.setdefault(match, str(uuid.uuid5(NAMESPACE, f"{name}:{len(seen)}")))
    result: dict[str, Any] = json.loads(UUID_TEXT.sub(lambda m: seen[m.group(0)], text))
    return result


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def build_files() -> dict[Path, str]:
    """Every example file's path and text; raises AssertionError if an example does not behave as labelled."""
    validator = load_validator()
    files: dict[Path, str] = {}
    valid = {event: deterministic(event, doc) for event, doc in valid_examples().items()}
    for event, doc in valid.items():
        errors = [i for i in validator.validate(doc) if i.severity == "error"]
        assert not errors, f"valid example {event} has errors: {errors}"
        files[HERE / f"Bundle-{event}.json"] = render(doc)
    for name, (event, mutate, expression) in INVALID.items():
        doc = copy.deepcopy(valid[event])
        mutate(doc)
        found = [i for i in validator.validate(doc) if i.severity == "error" and i.expression == expression]
        assert found, f"invalid example {name} does not produce an error at {expression}"
        expected = operation_outcome([Issue(Code.PROFILE_VIOLATION, found[0].text, expression)])
        expected["id"] = f"invalid-{name}"
        files[HERE / "invalid" / f"Bundle-invalid-{name}.json"] = render(doc)
        files[HERE / "invalid" / f"OperationOutcome-invalid-{name}.json"] = render(expected)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if any file would change")
    args = parser.parse_args(argv)
    stale = []
    for path, text in build_files().items():
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(("stale: " if args.check else "wrote: ") + str(path.relative_to(HERE)))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
