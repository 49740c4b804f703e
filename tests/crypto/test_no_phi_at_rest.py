"""D1/INV5: after real traffic through the hub (push, pull, a dead letter with its report) a `pg_dump` of the
database holds no seeded NHS number or patient name, and the service's logs hold no NHS number and no name at
all. D6: refusals (OperationOutcomes) and logs never echo payload values."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from adapters import builders
from adapters.recipient import Recipient
from service.logs import JsonFormatter
from tests.delivery.delivery_fixtures import eventually
from tests.support.hub import EVENT_SYSTEM, Network, running_hub

PATIENTS = [
    builders.SyntheticPatient(
        builders.synthetic_nhs_number(771000 + n), f"Quillingsby{n}", f"Zephyrine{n}", "1961-02-03", "female"
    )
    for n in range(4)
]
REFERRER = builders.Clinician("Marchbankson", "Oriel", "7123456")
KEY_WORKER = builders.Clinician("Thistlewood", "Perpetua", "7654321")
PATIENT_DATA = [v for p in PATIENTS for v in (p.nhs_number, p.family, p.given)]
STAFF_NAMES = [REFERRER.family, REFERRER.given, KEY_WORKER.family, KEY_WORKER.given]
"""Clinicians' names are kept in clear on purpose in the episodes' responsibility ledger (CONTRACT section 6:
`responsible` names the clinician); they must still never reach a log line or an OperationOutcome."""
SECRETS = PATIENT_DATA + STAFF_NAMES


def referral(patient: builders.SyntheticPatient, sender: str, receiver: str) -> dict[str, Any]:
    return builders.referral(
        EVENT_SYSTEM,
        sender_ods=sender,
        sender_name=f"Trust {sender}",
        receiver_ods=receiver,
        receiver_name=f"Trust {receiver}",
        patient=patient,
        referrer=REFERRER,
        key_worker=KEY_WORKER,
    )


@contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """The service's log lines, formatted exactly as `handover serve` writes them."""
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield sink
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def pg_dump(dsn: str) -> str:
    binary = shutil.which("pg_dump") or "/usr/lib/postgresql/15/bin/pg_dump"
    result = subprocess.run([binary, "--dbname", dsn], capture_output=True, check=True, timeout=60)
    return result.stdout.decode("utf-8", errors="replace")


async def test_d1_inv5_no_seeded_nhs_number_or_name_in_a_database_dump_or_the_logs(
    database: str, network: Network, tmp_path: Path
) -> None:
    rgt = Recipient("RGT", network.registry)
    pushing = network.edited(tmp_path / "net", lambda doc: doc["participants"]["RGT"].update(endpoint=rgt.endpoint))
    rgt.registry = pushing.registry
    async with rgt, running_hub(pushing, database, relay_poll_seconds=0.05) as hub:
        with captured_logs() as logs:
            sent = []
            for n, patient in enumerate(PATIENTS[:3]):  # pushed to RGT
                sender = ("RM1", "RDE", "RGN")[n]
                result = await hub.trust(sender).send(hub.trust(sender).sign(referral(patient, sender, "RGT")))
                assert result.accepted
                sent.append(result)

            async def pushed() -> bool:
                return len(rgt.business) == 3

            await eventually(pushed, within=10, what="three pushes")
            rgt.refuse_with(422, times=1)
            refused = hub.trust("RGP").sign(referral(PATIENTS[3], "RGP", "RGT"))  # dead letter → report to RGP
            assert (await hub.trust("RGP").send(refused)).accepted
            pulled = hub.trust("RGT").sign(referral(PATIENTS[0], "RGT", "RDE"))  # pull-only RDE
            assert (await hub.trust("RGT").send(pulled)).accepted

            async def reported() -> bool:
                return len(await hub.trust("RGP").inbox()) == 1

            await eventually(reported, within=10, what="the dead letter's report")
            [item] = await hub.trust("RDE").inbox()
            bundle, _ = await hub.trust("RDE").fetch(item["id"])
            assert bundle == pulled, "the recipient gets the plaintext back, byte for byte"
            await hub.trust("RDE").acknowledge(item["id"])
            await asyncio.sleep(0.2)
        dump = pg_dump(database)
    text = logs.getvalue()
    identifiers = [bundle["identifier"]["value"] for bundle in (refused, pulled)]
    assert all(identifier in dump for identifier in identifiers), "the scan sees the metadata kept in clear"
    assert "message accepted" in text and "delivery dead-lettered" in text, "the scan sees the logs"
    assert [value for value in PATIENT_DATA if value in dump] == [], "plaintext patient data in the database"
    assert [value for value in SECRETS if value in text] == [], "names or NHS numbers in the logs"


async def test_d6_refusals_and_logs_never_echo_payload_values(database: str, network: Network) -> None:
    patient = PATIENTS[1]
    async with running_hub(network, database) as hub:
        client = hub.trust("RM1")
        good = client.sign(referral(patient, "RM1", "RGT"))
        tampered = json.loads(json.dumps(good))
        tampered["entry"][2]["resource"]["name"][0]["family"] = patient.family + "x"
        unrouted = client.sign(referral(patient, "RM1", "ZZZ99"))
        bad_json = json.dumps(good).replace('"resourceType": "Bundle"', '"resourceType": "Bundle", "resourceType": 1')
        bodies = [
            json.dumps(tampered).encode(),
            json.dumps(unrouted).encode(),
            bad_json.encode(),
            json.dumps(good).encode()[:-40],
            json.dumps({**good, "type": patient.nhs_number}).encode(),
        ]
        with captured_logs() as logs:
            answers = [await hub.post_raw(body, request_id=str(uuid.uuid4())) for body in bodies]
    for status, outcome, _ in answers:
        assert 400 <= status < 500 and outcome["resourceType"] == "OperationOutcome"
    echoed = [s for s in SECRETS for _, outcome, _ in answers if s in json.dumps(outcome)]
    assert echoed == [], "an OperationOutcome echoed a payload value"
    assert [s for s in SECRETS if s in logs.getvalue()] == [], "a log line echoed a payload value"
    assert logs.getvalue().count('"status": 4') >= len(bodies), "the scan sees the request log lines"
