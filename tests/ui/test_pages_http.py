"""The governance, payload, audit and deliveries pages over plain HTTP through the real sign-in: who may open
each page and post each form, CSRF on every form, and what each page and action does (D5 for payload reads)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support.hub import Network, RunningHub, running_hub
from tests.support.messages import referral
from tests.support.recipient import Recipient
from tests.ui.http_signin import BROWSER, SignedIn, sign_in

GOVERNANCE, OPS, SMDT, TRUST = "amara.okafor", "sam.patel", "jo.whitfield", "lewis.grant"
SignIn = Callable[[str], Awaitable[SignedIn]]


@pytest.fixture
async def fast_hub(network: Network, database: str) -> AsyncIterator[RunningHub]:
    """The development provider on and checkpoints every half second (receipts are covered quickly)."""
    async with running_hub(network, database, dev_idp=True, checkpoint_seconds=0.5) as running:
        yield running


async def _signed_in(hub: RunningHub, opened: list[SignedIn], subject: str) -> SignedIn:
    opened.append(await sign_in(hub.base_url, subject))
    return opened[-1]


@pytest.fixture
async def fast_signed_in(fast_hub: RunningHub) -> AsyncIterator[SignIn]:
    opened: list[SignedIn] = []
    yield lambda subject: _signed_in(fast_hub, opened, subject)
    for one in opened:
        await one.client.close()


async def send_referral(hub: RunningHub, sender: str = "RM1") -> tuple[dict[str, Any], dict[str, Any]]:
    """Send a referral; returns the signed bundle and the receipt (the 202 body)."""
    client = hub.trust(sender)
    signed = client.sign(referral(sender))
    result = await client.send(signed)
    assert result.accepted, result.body
    return signed, json.loads(result.body) if isinstance(result.body, (bytes, str)) else result.body


async def page(user: SignedIn, url: str) -> tuple[int, str]:
    async with user.client.get(url, allow_redirects=False) as resp:
        return resp.status, await resp.text()


async def post(user: SignedIn, url: str, data: dict[str, str], *, csrf: bool = True) -> tuple[int, str, str]:
    form = {**data, "csrf_token": user.csrf_token} if csrf else data
    async with user.client.post(url, data=form, allow_redirects=False) as resp:
        return resp.status, await resp.text(), resp.headers.get("Location", "")


async def audit_rows(dsn: str, event_type: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch("SELECT actor, message_id, leaf FROM audit_events WHERE event_type = $1", event_type)
    finally:
        await conn.close()


async def episode_and_message(dsn: str) -> tuple[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow("SELECT episode_id, message_id FROM episode_messages WHERE kind = 'referral'")
    finally:
        await conn.close()
    return str(row["episode_id"]), str(row["message_id"])


# ---------------------------------------------------------------------------------------------- governance


async def test_the_governance_page_and_csv_are_for_governance_only(ui_hub: RunningHub, signed_in: SignIn) -> None:
    for sender in ("RM1", "RM1", "RDE"):
        await send_referral(ui_hub, sender)
    governance = await signed_in(GOVERNANCE)
    status, body = await page(governance, f"{ui_hub.base_url}/ui/governance")
    assert status == 200
    assert "Governance summary" in body and "IOG target 200 a year" in body
    trust_table = body[body.index('id="trust-table"') :]
    # each figure links to its episodes (issue 25)
    assert re.search(r"\(RM1\)</th>\s*<td[^>]*><a href=\"/ui/episodes\?trust=RM1[^\"]*\">2<", trust_table), "RM1's two"
    assert re.search(r"\(RDE\)</th>\s*<td[^>]*><a href=\"/ui/episodes\?trust=RDE[^\"]*\">1<", trust_table)
    assert body.count("<svg") >= 4  # the NHS logo and three charts
    async with governance.client.get(f"{ui_hub.base_url}/ui/governance.csv") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/csv"
        assert "attachment" in resp.headers["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert {(r["trust"], r["referrals"]) for r in rows if r["trust"] != "network"} == {("RM1", "2"), ("RDE", "1")}
    assert [r["referrals"] for r in rows if r["trust"] == "network"] == ["3"]
    for subject in (OPS, SMDT, TRUST):
        other = await signed_in(subject)
        for path in ("/ui/governance", "/ui/governance.csv"):
            status, body = await page(other, f"{ui_hub.base_url}{path}")
            assert status == 403, (subject, path)
            assert "Governance summary" not in body and "(RDE)" not in body


# ------------------------------------------------------------------------------------------------ payload


async def test_d5_a_payload_is_read_only_with_a_reason_audited_and_shown_as_a_letter(
    ui_hub: RunningHub, signed_in: SignIn
) -> None:
    signed, _ = await send_referral(ui_hub)
    patient = next(e["resource"] for e in signed["entry"] if e["resource"]["resourceType"] == "Patient")
    nhs_number, family = patient["identifier"][0]["value"], patient["name"][0]["family"]
    episode_id, message_id = await episode_and_message(ui_hub.dsn)
    url = f"{ui_hub.base_url}/ui/episodes/{episode_id}/messages/{message_id}"
    governance = await signed_in(GOVERNANCE)

    status, form = await page(governance, url)
    assert status == 200 and 'name="reason"' in form
    assert "Referral to the specialist MDT</dd>" in form  # the message's kind in words, not "referral"
    assert family.upper() not in form.upper() and nhs_number not in form, "the form shows no content"

    status, body, _ = await post(governance, url, {"reason": "Incident review 2026-114"}, csrf=False)
    assert status == 403
    status, body, _ = await post(governance, url, {"reason": "too short"})
    assert status == 400 and "There is a problem" in body and family.upper() not in body.upper()
    assert await audit_rows(ui_hub.dsn, "payload-read") == [], "no read without a CSRF token and a reason"

    status, letter, _ = await post(governance, url, {"reason": "Incident review 2026-114"})
    assert status == 200
    assert "Referral to the specialist MDT" in letter
    assert f"Alex {family.upper()}" in letter
    assert f"{nhs_number[:3]} {nhs_number[3:6]} {nhs_number[6:]}" in letter
    assert "Secondary malignant neoplasm of liver (94381002)" in letter  # a coded value with its display
    assert '"resourceType"' not in letter, "a letter, not raw JSON"
    [read] = await audit_rows(ui_hub.dsn, "payload-read")
    assert (read["actor"], str(read["message_id"])) == (GOVERNANCE, message_id)
    assert json.loads(read["leaf"])["details"] == {"reason": "Incident review 2026-114", "role": "governance"}

    status, audit_page = await page(governance, f"{ui_hub.base_url}/ui/audit")
    reads = audit_page[audit_page.index('id="payload-reads"') :]
    assert "Dr Amara Okafor" in reads and message_id in reads and "Incident review 2026-114" in reads  # by name
    assert f'href="/ui/episodes/{episode_id}/messages/{message_id}"' in reads  # linked to its episode

    for subject in (OPS, SMDT, TRUST):
        other = await signed_in(subject)
        assert (await page(other, url))[0] == 403
        assert (await post(other, url, {"reason": "Incident review 2026-114"}))[0] == 403
    assert len(await audit_rows(ui_hub.dsn, "payload-read")) == 1


async def test_a_message_of_another_episode_or_no_message_is_404_and_never_read(
    ui_hub: RunningHub, signed_in: SignIn
) -> None:
    await send_referral(ui_hub)
    episode_id, message_id = await episode_and_message(ui_hub.dsn)
    governance = await signed_in(GOVERNANCE)
    for path in (
        f"/ui/episodes/{episode_id}/messages/00000000-0000-0000-0000-000000000000",
        f"/ui/episodes/00000000-0000-0000-0000-000000000000/messages/{message_id}",
        f"/ui/episodes/{episode_id}/messages/not-a-uuid",
    ):
        status, _, _ = await post(governance, ui_hub.base_url + path, {"reason": "Incident review 2026-114"})
        assert status == 404, path
    assert await audit_rows(ui_hub.dsn, "payload-read") == []


# -------------------------------------------------------------------------------------------------- audit


async def wait_for_run(user: SignedIn, url: str, within: float = 30) -> str:
    deadline = time.monotonic() + within
    while True:
        status, body = await page(user, url)
        assert status == 200
        if "Running" not in body:
            return body
        assert "verify-progress.js" in body and 'data-running="true"' in body, "a running run updates itself"
        assert time.monotonic() < deadline, "verification did not finish"
        await asyncio.sleep(0.2)


async def test_verify_now_runs_in_the_background_and_its_result_is_kept(
    fast_hub: RunningHub, fast_signed_in: SignIn
) -> None:
    for _ in range(3):
        await send_referral(fast_hub)
    await asyncio.sleep(1.2)  # a checkpoint covers them
    governance = await fast_signed_in(GOVERNANCE)
    status, _, _ = await post(governance, f"{fast_hub.base_url}/ui/audit/verify", {}, csrf=False)
    assert status == 403
    status, _, location = await post(governance, f"{fast_hub.base_url}/ui/audit/verify", {})
    assert status == 303 and location.startswith("/ui/audit/verify/")
    body = await wait_for_run(governance, fast_hub.base_url + location)
    assert "Passed" in body and "by Dr Amara Okafor" in body and f"by {GOVERNANCE}" not in body  # by name
    conn = await asyncpg.connect(fast_hub.dsn)
    try:
        run = await conn.fetchrow("SELECT outcome, checked, total, tree_size FROM audit_verify_runs")
    finally:
        await conn.close()
    assert run["outcome"] == "passed" and run["checked"] == run["tree_size"] >= run["total"] > 0
    again = await fast_signed_in(GOVERNANCE)  # another session (a reload, another process) sees the result
    status, overview = await page(again, f"{fast_hub.base_url}/ui/audit")
    assert "Passed" in overview[overview.index('id="verify-runs"') :] and "started by Dr Amara Okafor" in overview
    for subject in (OPS, SMDT, TRUST):
        other = await fast_signed_in(subject)
        assert (await page(other, f"{fast_hub.base_url}/ui/audit"))[0] == 403
        assert (await post(other, f"{fast_hub.base_url}/ui/audit/verify", {}))[0] == 403


async def test_a_receipt_or_message_id_is_verified_against_the_latest_checkpoint(
    fast_hub: RunningHub, fast_signed_in: SignIn
) -> None:
    _, receipt = await send_referral(fast_hub)
    await asyncio.sleep(1.2)
    governance = await fast_signed_in(GOVERNANCE)
    url = f"{fast_hub.base_url}/ui/audit/receipt"
    status, body, _ = await post(governance, url, {"receipt": json.dumps(receipt)})
    assert status == 200
    result = body[body.index('id="inclusion-result"') :]
    assert "Included: the proof verifies" in result and "Receipt signed by" in result
    _, message_id = await episode_and_message(fast_hub.dsn)
    status, body, _ = await post(governance, url, {"message_id": message_id})
    assert "Included: the proof verifies" in body[body.index('id="inclusion-result"') :]

    forged = json.loads(json.dumps(receipt))
    forged["entry"][1]["resource"]["parameter"][0]["valueString"] = "00000000-0000-0000-0000-000000000000"
    status, body, _ = await post(governance, url, {"receipt": json.dumps(forged)})
    assert "Not verified" in body and "not a receipt signed by the hub" in body
    status, body, _ = await post(governance, url, {"message_id": "00000000-0000-0000-0000-000000000000"})
    assert "Not verified" in body
    assert (await post(governance, url, {"message_id": message_id}, csrf=False))[0] == 403


# --------------------------------------------------------------------------------------------- deliveries


@pytest.fixture
async def refusing_rgt(network: Network) -> AsyncIterator[Recipient]:
    async with Recipient("RGT", network.registry) as recipient:
        recipient.refuse_with(422)
        yield recipient


@pytest.fixture
async def push_hub(
    network: Network, database: str, tmp_path: Path, refusing_rgt: Recipient
) -> AsyncIterator[RunningHub]:
    """RGT has a push endpoint that refuses (422) until told otherwise."""

    def point_rgt(doc: dict[str, Any]) -> None:
        doc["participants"]["RGT"]["endpoint"] = refusing_rgt.endpoint

    pushed = network.edited(tmp_path / "net", point_rgt)
    async with running_hub(pushed, database, dev_idp=True, relay_poll_seconds=0.1) as running:
        yield running


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within: float = 15) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def delivery_state(dsn: str) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT recipient_ods, state FROM deliveries ORDER BY id")
    finally:
        await conn.close()
    return [(r["recipient_ods"], r["state"]) for r in rows]


async def test_ops_sees_a_dead_letter_with_its_report_and_delivers_it_again_exactly_once(
    push_hub: RunningHub, refusing_rgt: Recipient
) -> None:
    await send_referral(push_hub)
    await eventually(lambda: _has(push_hub.dsn, ("RGT", "dead_letter")), "the refusal to dead-letter it")
    _, message_id = await episode_and_message(push_hub.dsn)
    ops = await sign_in(push_hub.base_url, OPS)
    governance = await sign_in(push_hub.base_url, GOVERNANCE)
    try:
        status, body = await page(ops, f"{push_hub.base_url}/ui/deliveries")
        assert status == 200
        dead = body[body.index('id="dead-letters"') :]
        assert message_id in dead and "recipient-refused" in dead and "(HTTP 422)" in dead
        assert "Deliver again" in dead
        recipients = body[body.index('id="recipients"') : body.index('id="dead-letters"')]
        assert "Closed" in recipients, "RGT answered (with a refusal): its circuit is closed"

        status, body = await page(governance, f"{push_hub.base_url}/ui/deliveries")
        assert status == 200 and message_id in body and "Deliver again</button>" not in body
        url = f"{push_hub.base_url}/ui/deliveries/{message_id}/redeliver"
        assert (await post(governance, url, {"recipient": "RGT"}))[0] == 403
        assert (await post(ops, url, {"recipient": "RGT"}, csrf=False))[0] == 403
        assert await _has(push_hub.dsn, ("RGT", "dead_letter"))

        refusing_rgt.accept_all()
        status, _, location = await post(ops, url, {"recipient": "RGT"})
        assert status == 303 and location == "/ui/deliveries"  # the notice is the session's, not the URL's
        notice = f"Message {message_id} is back in its queue"
        assert notice in (await page(ops, f"{push_hub.base_url}/ui/deliveries"))[1]
        assert notice not in (await page(ops, f"{push_hub.base_url}/ui/deliveries"))[1], "shown once"
        await eventually(lambda: _has(push_hub.dsn, ("RGT", "delivered")), "the re-queued message to be delivered")
        status, _, _ = await post(ops, url, {"recipient": "RGT"})
        assert status == 409, "a delivered message cannot be re-queued"
        [requeue] = await audit_rows(push_hub.dsn, "delivery-requeued")
        assert (requeue["actor"], str(requeue["message_id"])) == (OPS, message_id)
        for subject in (SMDT, TRUST):
            other = await sign_in(push_hub.base_url, subject)
            try:
                assert (await page(other, f"{push_hub.base_url}/ui/deliveries"))[0] == 403
            finally:
                await other.client.close()
    finally:
        await ops.client.close()
        await governance.client.close()


async def _has(dsn: str, wanted: tuple[str, str]) -> bool:
    return wanted in await delivery_state(dsn)


async def test_pages_without_a_session_send_browsers_to_sign_in(ui_hub: RunningHub) -> None:
    for path in ("/ui/governance", "/ui/governance.csv", "/ui/deliveries", "/ui/audit"):
        async with ui_hub.session.get(f"{ui_hub.base_url}{path}", headers=BROWSER, allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == f"/ui/sign-in?next={path}", path
        async with ui_hub.session.get(f"{ui_hub.base_url}{path}", allow_redirects=False) as resp:
            assert resp.status == 401, path
