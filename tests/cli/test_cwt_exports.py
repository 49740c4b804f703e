"""`handover export cwt|cosd` (hazards HAZ-24, HAZ-22): one row per pathway in a CSV a
spreadsheet opens; pseudonymised by default (no NHS number, no date of birth, the hub's keyed pseudonym instead);
identifiable only for governance staff with a reason, every referral read audited as a payload read."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from service.cli import main
from service.cwt_export_cli import export_to_file
from service.episodes.cwt_extracts import ExtractRequest, IdentifiableRequest, checked_request
from service.errors import HandoverError
from service.http.context import SERVICES
from service.staff import StaffIdentityProvider, StaffRole, mint_dev_staff_token
from service.terminology import NHS_NUMBER_SYSTEM
from tests.support.cwt import START, day, episode_ids, set_cwt_dates
from tests.support.hub import Network, RunningHub
from tests.support.messages import referral
from tests.support.pathways import story_for

REASON = "Validating the October CWT upload against the trust's PAS"


def nhs_number_of(bundle: dict[str, Any]) -> str:
    patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    return str(next(i["value"] for i in patient["identifier"] if i["system"] == NHS_NUMBER_SYSTEM))


async def two_pathways(hub: RunningHub) -> list[str]:
    """Two RM1 → RGT pathways, one treated late after a late transfer, one transferred and waiting; their NHS
    numbers."""
    numbers = []
    for _ in range(2):
        client = hub.trust("RM1")
        bundle = referral("RM1")
        numbers.append(nhs_number_of(bundle))
        assert (await client.send(client.sign(bundle))).accepted
    late, waiting = await episode_ids(hub.dsn)
    await set_cwt_dates(
        hub.dsn,
        late,
        pathway_start=START,
        ipt_received_date=day(45),
        decision_to_treat_date=day(50),
        treatment_date=day(65),
        treatment_opcs4="J02.1",
    )
    await set_cwt_dates(hub.dsn, waiting, pathway_start=START, ipt_received_date=day(20))
    return numbers


def read_csv(path: Path) -> tuple[str, list[dict[str, str]]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "a byte order mark, so a spreadsheet reads UTF-8"
    text = raw.decode("utf-8-sig")
    return text, list(csv.DictReader(text.splitlines()))


async def payload_reads(dsn: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT leaf FROM audit_events WHERE event_type = 'payload-read' ORDER BY 1")
    finally:
        await conn.close()
    return [json.loads(bytes(r["leaf"])) for r in rows]


async def test_the_cwt_extract_is_pseudonymised_one_row_per_pathway(hub: RunningHub, tmp_path: Path) -> None:
    numbers = await two_pathways(hub)
    target = tmp_path / "cwt.csv"
    assert await export_to_file(hub.dsn, hub.settings, ExtractRequest("cwt", START, day(90)), target) == 0
    text, rows = read_csv(target)
    assert len(rows) == 2
    for number in numbers:
        assert number not in text, "no NHS number in a pseudonymised extract"
    assert "1958-03-14" not in text, "no date of birth"
    for identity in ("NHS NUMBER", "PERSON BIRTH DATE", "LOCAL PATIENT IDENTIFIER", "PATIENT PATHWAY IDENTIFIER"):
        assert identity not in rows[0], identity
    pseudonyms = hub.app[SERVICES].pseudonyms
    assert [r["NHS NUMBER (PSEUDONYMISED)"] for r in rows] == [pseudonyms.nhs_number(n) for n in numbers]
    late, waiting = rows
    assert late["ORGANISATION IDENTIFIER (REFERRING PROVIDER)"] == "RM1"
    assert late["ORGANISATION NAME (TREATING PROVIDER)"] not in ("", "RGT"), "organisations by name too"
    assert late["CANCER REFERRAL TO TREATMENT PERIOD START DATE"] == "2026-09-01"
    assert late["INTER-PROVIDER TRANSFER RECEIVED DATE"] == "2026-10-16"
    assert late["TREATMENT START DATE (CANCER)"] == "2026-11-05"
    assert late["PRIMARY PROCEDURE (OPCS)"] == "J02.1"
    assert (late["DAYS TO TRANSFER (TARGET 38)"], late["DAYS TO TREATMENT (TARGET 62)"]) == ("45", "65")
    assert (late["TRANSFERRED BY DAY 38"], late["62 DAY STANDARD MET"], late["31 DAY STANDARD MET"]) == ("N", "N", "Y")
    assert late["BREACH ALLOCATION RULE"] == "referring"
    assert (
        late["BREACH ALLOCATION SHARE (REFERRING PROVIDER)"],
        late["BREACH ALLOCATION SHARE (TREATING PROVIDER)"],
    ) == (
        "1",
        "",
    )
    assert (waiting["BREACH ALLOCATION RULE"], waiting["TREATMENT START DATE (CANCER)"]) == ("pending", "")
    assert (waiting["TRANSFERRED BY DAY 38"], waiting["62 DAY STANDARD MET"]) == ("Y", "")
    assert await payload_reads(hub.dsn) == [], "a pseudonymised extract is not an identity read"


async def test_the_cosd_extract_is_headed_by_item_numbers(hub: RunningHub, tmp_path: Path) -> None:
    await two_pathways(hub)
    target = tmp_path / "cosd.csv"
    assert await export_to_file(hub.dsn, hub.settings, ExtractRequest("cosd", START, day(90)), target) == 0
    _, rows = read_csv(target)
    assert len(rows) == 2
    headers = list(rows[0])
    for item in ("CR0230", "CR0430", "CR1370", "CR6970", "CR2050"):
        assert any(h.startswith(f"{item} ") for h in headers), item
    assert not any(h.startswith(("CR0010", "CR0020", "CR0100")) for h in headers), "no identity items by default"
    late = rows[0]
    assert late["CR1370 TREATMENT START DATE (CANCER)"] == "2026-11-05"
    assert late["CR6970 METASTATIC SITE"] == "Secondary malignant neoplasm of liver (SNOMED CT 94381002)"
    assert "7000002" in late["CR2050 CLINICAL NURSE SPECIALIST (KEY WORKER)"], "the key worker the referral names"
    assert late["CR0230 DATE FIRST SEEN"] == "", "not seen at the centre yet: blank, never a guessed date"


async def test_an_identifiable_extract_names_patients_and_audits_each_read(hub: RunningHub, tmp_path: Path) -> None:
    numbers = await two_pathways(hub)
    provider = StaffIdentityProvider.load(None, hub.network.keys_dir)
    reader = provider.verify(hub.staff_token("governance", user="g.reader"), now=hub.app[SERVICES].clock())
    request = ExtractRequest("cosd", START, day(90), checked_request(reader, REASON))
    target = tmp_path / "cosd-identifiable.csv"
    assert await export_to_file(hub.dsn, hub.settings, request, target) == 0
    _, rows = read_csv(target)
    assert [r["CR0010 NHS NUMBER"] for r in rows] == numbers
    assert [r["CR0100 PERSON BIRTH DATE"] for r in rows] == ["1958-03-14", "1958-03-14"]
    events = await payload_reads(hub.dsn)
    assert len(events) == 2, "one payload-read event per referral read"
    for event in events:
        assert (event["actor"], event["outcome"]) == ("g.reader", "read")
        assert event["details"] == {"reason": REASON, "role": "governance", "purpose": "cosd-extract"}


def test_identity_is_for_governance_staff_with_a_reason(network: Network) -> None:
    provider = StaffIdentityProvider.load(None, network.keys_dir)
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    ops = provider.verify(mint_dev_staff_token(network.keys_dir, "o.operator", StaffRole.OPS), now=now)
    governance = provider.verify(mint_dev_staff_token(network.keys_dir, "g.reader", StaffRole.GOVERNANCE), now=now)
    with pytest.raises(HandoverError) as refused:
        checked_request(ops, REASON)
    assert refused.value.code.status == 403
    for reason in ("because", "two\nlines of reason text", "x" * 501):
        with pytest.raises(HandoverError) as refused:
            checked_request(governance, reason)
        assert refused.value.code.status == 400
    assert checked_request(governance, f"  {REASON} ") == IdentifiableRequest(governance, REASON)


@pytest.fixture
def cli_env(network: Network, monkeypatch: pytest.MonkeyPatch) -> Network:
    monkeypatch.setenv("HANDOVER_NETWORK", str(network.network_path))
    monkeypatch.setenv("HANDOVER_KEYS_DIR", str(network.keys_dir))
    monkeypatch.delenv("HANDOVER_STAFF_TOKEN", raising=False)
    return network


def test_the_command_refuses_bad_requests_with_exit_2_and_writes_nothing(cli_env: Network, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    governance = mint_dev_staff_token(cli_env.keys_dir, "g.reader", StaffRole.GOVERNANCE)
    ops = mint_dev_staff_token(cli_env.keys_dir, "o.operator", StaffRole.OPS)
    period = ["--from", "2026-09-01", "--to", "2026-12-31", str(target)]
    refused = [
        ["export", "cwt", "--from", "2026-12-31", "--to", "2026-09-01", str(target)],
        ["export", "cwt", *period, "--identifiable", "--reason", REASON],  # no staff token
        ["export", "cwt", *period, "--identifiable", "--staff-token", governance],  # no reason
        ["export", "cosd", *period, "--identifiable", "--staff-token", ops, "--reason", REASON],  # not governance
        ["export", "cosd", *period, "--identifiable", "--staff-token", "not-a-token", "--reason", REASON],
        ["export", "cosd", *period, "--reason", REASON],  # a reason without --identifiable
    ]
    for argv in refused:
        assert main(argv) == 2, argv
    with pytest.raises(SystemExit) as bad_date:
        main(["export", "cwt", "--from", "2026-13-01", "--to", "2026-12-31", str(target)])
    assert bad_date.value.code == 2
    assert not target.exists()


def test_the_command_writes_the_extract_from_the_database(cli_env: Network, database: str, tmp_path: Path) -> None:
    target = tmp_path / "extracts" / "cwt.csv"
    env = pytest.MonkeyPatch()
    env.setenv("HANDOVER_DATABASE_URL", database)
    try:
        assert main(["export", "cwt", "--from", "2026-09-01", "--to", "2026-12-31", str(target)]) == 0
    finally:
        env.undo()
    text, rows = read_csv(target)
    assert rows == []
    assert text.startswith("NHS NUMBER (PSEUDONYMISED),HANDOVER EPISODE IDENTIFIER,")
    assert [p.name for p in target.parent.iterdir()] == ["cwt.csv"], "no temporary file left behind"


async def test_cosd_dates_from_messages_are_the_europe_london_dates_of_the_smdt_outcome_and_the_transfer(
    hub: RunningHub, tmp_path: Path
) -> None:
    story = story_for(24_001)
    for sender, build in (
        ("RM1", story.referral),
        ("RGT", lambda: story.outcome("accepted")),
        ("RM1", story.transfer_to_centre),
        ("RGT", story.centre_answers),
    ):
        client = hub.trust(sender)
        assert (await client.send(client.sign(build()))).accepted
    [episode] = await episode_ids(hub.dsn)
    await set_cwt_dates(hub.dsn, episode, pathway_start=START, ipt_received_date=day(20))
    conn = await asyncpg.connect(hub.dsn)
    try:  # late on summer evenings (UTC), already the next day in London
        for kind, at in (("outcome-accepted", "2026-07-01T23:30:00Z"), ("transfer-accepted", "2026-07-09T23:05:00Z")):
            await conn.execute(
                "UPDATE episode_messages SET at = $2::text::timestamptz WHERE episode_id = $1 AND kind = $3",
                episode,
                at,
                kind,
            )
    finally:
        await conn.close()
    target = tmp_path / "cosd.csv"
    assert await export_to_file(hub.dsn, hub.settings, ExtractRequest("cosd", START, day(90)), target) == 0
    _, [row] = read_csv(target)
    assert row["CR0430 MULTIDISCIPLINARY TEAM DISCUSSION DATE (CANCER)"] == "2026-07-02"
    assert row["CR0230 DATE FIRST SEEN"] == "2026-07-10"
