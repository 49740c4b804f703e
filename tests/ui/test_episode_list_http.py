"""`/ui/episodes`, its CSV, the SMDT meeting list and patients by name, per role, against the demo hub over HTTP
(issue 25 items 1-3): filters, counts and pages; governance figures that link to their episodes; care roles see
the patient (name, NHS number `999 123 4567`, date of birth, age), governance and other trusts never do."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.ui.demo_hub import DemoHub
from tests.ui.http_signin import SignedIn, sign_in

NHS_NUMBER_SHOWN = re.compile(r"NHS number <span class=\"handover-nowrap\">(999 \d{3} \d{4})</span>")
PATIENT_NAME = re.compile(r'class="handover-patient-name" href="/ui/episodes/([0-9a-f-]{36})">([^<]+)</a>')

Get = Callable[[str, str], Awaitable[tuple[int, str]]]


@pytest.fixture
async def get(demo: DemoHub) -> AsyncIterator[Get]:
    """`await get(subject, path)`: (status, body) as that development user (one client per user)."""
    clients: dict[str, SignedIn] = {}

    async def fetch(subject: str, path: str) -> tuple[int, str]:
        if subject not in clients:
            clients[subject] = await sign_in(demo.base_url, subject)
        async with clients[subject].client.get(demo.base_url + path) as resp:
            return resp.status, await resp.text()

    yield fetch
    for signed in clients.values():
        await signed.client.close()


async def test_every_episode_is_listed_with_counts_filters_and_pages(demo: DemoHub, get: Get) -> None:
    status, page = await get("amara.okafor", "/ui/episodes")
    everyone = sum(len(ids) for ids in demo.episodes.values())
    assert status == 200
    assert f"{everyone} episodes." in page
    assert all(f"/ui/episodes/{e}" in page for ids in demo.episodes.values() for e in ids)  # fewer than a page
    assert 'id="state-counts"' in page and "Accepted by the SMDT: " in page
    status, page = await get("amara.okafor", "/ui/episodes?trust=RM1&state=referred")
    rm1_referred = [e for e in demo.episodes["RM1"] if demo.states[e] == "referred"]
    assert status == 200 and f"{len(rm1_referred)} episode" in page
    assert "referred by Norfolk and Norwich University Hospitals NHS Foundation Trust (RM1)" in page  # restated
    assert set(re.findall(r'href="/ui/episodes/([0-9a-f-]{36})"', page)) == {str(e) for e in rm1_referred}
    status, page = await get("amara.okafor", "/ui/episodes?from=2001-01-01&to=2001-12-31")
    assert status == 200 and "0 episodes" in page and 'id="no-episodes"' in page
    status, page = await get("amara.okafor", "/ui/episodes?state=nonsense&from=7/12/2026&page=2")
    assert status == 400 and "There is no episode state like that" in page and "must look like 2026-12-07" in page


async def test_episode_csv_has_every_listed_episode_and_no_patient_details(demo: DemoHub, get: Get) -> None:
    status, body = await get("jo.whitfield", "/ui/episodes.csv?sort=oldest")
    rows = list(csv.DictReader(io.StringIO(body)))
    assert status == 200
    assert {r["episode_id"] for r in rows} == {str(e) for ids in demo.episodes.values() for e in ids}
    assert all(r["referring_trust"] and r["state"] and "-" not in r["state"] for r in rows)
    assert not re.search(r"\b999\d{7}\b|999 \d{3} \d{4}", body)
    status, _ = await get("jo.whitfield", "/ui/episodes.csv?breach=sometimes")
    assert status == 400


async def test_governance_figures_link_to_the_episodes_behind_them(demo: DemoHub, get: Get) -> None:
    status, page = await get("amara.okafor", "/ui/governance")
    links = set(re.findall(r'href="(/ui/episodes\?[^"]+)"', page))
    assert status == 200 and any("milestone=accepted" in link for link in links)
    referrals = next(
        link for link in links if "trust=RM1" in link and "milestone" not in link and "overdue" not in link
    )
    status, listed = await get("amara.okafor", referrals.replace("&amp;", "&"))
    assert status == 200 and f"{len(demo.episodes['RM1'])} episode" in listed


async def test_care_roles_see_patients_by_name_governance_and_other_trusts_never(demo: DemoHub, get: Get) -> None:
    _, coordinator = await get("jo.whitfield", "/ui/episodes")
    named = dict(PATIENT_NAME.findall(coordinator))
    assert len(named) == sum(len(ids) for ids in demo.episodes.values())
    assert NHS_NUMBER_SHOWN.search(coordinator) and re.search(r"Born \d{1,2} \w+ \d{4} \(\d+ years\)", coordinator)
    rm1 = str(demo.episode_of("RM1"))
    _, episode_page = await get("lewis.grant", f"/ui/episodes/{rm1}")  # a trust on the episode
    assert f"<h1>{named[rm1]} " in episode_page and 'id="patient"' in episode_page
    _, own_list = await get("lewis.grant", "/ui/episodes")
    assert set(PATIENT_NAME.findall(own_list)) == {(str(e), named[str(e)]) for e in demo.episodes["RM1"]}
    status, other_trust = await get("priya.shah", f"/ui/episodes/{rm1}")  # RDE: not on the RM1 episode
    assert status == 403 and named[rm1] not in other_trust
    _, rde_list = await get("priya.shah", "/ui/episodes")
    assert rm1 not in rde_list and all(
        name not in rde_list
        for e, name in named.items()
        if e != rm1 and e not in {str(x) for x in demo.episodes.get("RDE", [])}
    )
    for path in ("/ui/episodes", f"/ui/episodes/{rm1}", "/ui/"):
        _, governance = await get("amara.okafor", path)
        assert not NHS_NUMBER_SHOWN.search(governance) and named[rm1] not in governance, path
    status, _ = await get("sam.patel", "/ui/episodes")  # ops: no patients at all
    assert status == 403


async def _search(demo: DemoHub, subject: str, nhs_number: str) -> tuple[int, str]:
    signed = await sign_in(demo.base_url, subject)
    try:
        async with signed.client.post(
            f"{demo.base_url}/ui/search", data={"csrf_token": signed.csrf_token, "nhs_number": nhs_number}
        ) as resp:
            return resp.status, await resp.text()
    finally:
        await signed.client.close()


async def test_search_restates_the_number_and_names_the_patient_only_for_care_roles_on_it(
    demo: DemoHub, get: Get
) -> None:
    status, page = await _search(demo, "jo.whitfield", "999 000 0018")
    assert status == 200 and "Results for NHS number 999 000 0018" in page
    _, coordinator = await get("jo.whitfield", "/ui/episodes?trust=RM1&state=referred")
    nhs_number = NHS_NUMBER_SHOWN.search(coordinator)
    [(episode_id, name)] = PATIENT_NAME.findall(coordinator)
    assert nhs_number is not None
    _, own = await _search(demo, "lewis.grant", nhs_number.group(1))  # RM1, on the episode
    assert f"Results for NHS number {nhs_number.group(1)}" in own and name in own and episode_id in own
    _, other = await _search(demo, "priya.shah", nhs_number.group(1))  # RDE, not on it
    assert "No episode you may see belongs to NHS number" in other and name not in other and episode_id not in other
    _, governance = await _search(demo, "amara.okafor", nhs_number.group(1))
    assert episode_id in governance and name not in governance


async def test_meeting_list_shows_what_the_smdt_discusses_and_prints(demo: DemoHub, get: Get) -> None:
    status, page = await get("jo.whitfield", "/ui/meeting")
    awaiting = [
        e for ids in demo.episodes.values() for e in ids if demo.states[e] in ("referred", "more-information-needed")
    ]
    assert status == 200 and f"{len(awaiting)} referral" in page
    assert all(f"/ui/episodes/{e}" in page for e in awaiting)
    for words in ("for SMDT opinion on resection", "Secondary malignant neoplasm of liver", "Day 38 ", "Key worker"):
        assert words in page
    assert NHS_NUMBER_SHOWN.search(page)
    assert '<link rel="stylesheet" href="/ui/static/print.css" media="print">' in page
    assert (await get("amara.okafor", "/ui/meeting"))[0] == 403
    assert (await get("lewis.grant", "/ui/meeting"))[0] == 403
