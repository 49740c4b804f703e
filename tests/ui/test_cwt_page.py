"""The cancer waiting times page and its CSVs through the real sign-in (hazard HAZ-23): governance
only; providers by name with the ODS code beside, dates in words, each breach explained and linked to its
episode; the downloads open as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable

from tests.support.cwt import START, day, episode_ids, set_cwt_dates
from tests.support.hub import RunningHub
from tests.support.messages import referral
from tests.ui.http_signin import SignedIn

GOVERNANCE, OPS, SMDT, TRUST = "amara.okafor", "sam.patel", "jo.whitfield", "lewis.grant"
PERIOD = "from=2026-09-01&to=2026-12-31"


async def test_the_cwt_page_and_csvs_are_for_governance_only(
    ui_hub: RunningHub, signed_in: Callable[[str], Awaitable[SignedIn]]
) -> None:
    client = ui_hub.trust("RM1")
    assert (await client.send(client.sign(referral("RM1")))).accepted
    [episode] = await episode_ids(ui_hub.dsn)
    await set_cwt_dates(ui_hub.dsn, episode, pathway_start=START, ipt_received_date=day(45), treatment_date=day(65))
    governance = await signed_in(GOVERNANCE)
    async with governance.client.get(f"{ui_hub.base_url}/ui/governance/cwt?{PERIOD}") as resp:
        assert resp.status == 200
        body = await resp.text()
    assert "Cancer waiting times" in body
    assert "1 September 2026 to 31 December 2026" in body, "dates in words"
    assert "(RM1)</th>" in body and "(RGT)</th>" in body, "providers by name, code beside"
    assert f'href="/ui/episodes/{episode}"' in body
    assert "Breach allocated to the referring trust" in body and "on day 45, after day 38" in body
    assert "5 November 2026 (day 65)" in body
    async with governance.client.get(f"{ui_hub.base_url}/ui/governance/cwt.csv?{PERIOD}") as resp:
        assert (resp.status, resp.content_type) == (200, "text/csv")
        assert "attachment" in resp.headers["Content-Disposition"]
        providers = list(csv.DictReader(io.StringIO(await resp.text())))
    assert {(r["provider_ods"], r["allocated_breaches"]) for r in providers} == {("RM1", "1"), ("RGT", "0")}
    async with governance.client.get(f"{ui_hub.base_url}/ui/governance/cwt-breaches.csv?{PERIOD}") as resp:
        [breach] = list(csv.DictReader(io.StringIO(await resp.text())))
    assert (breach["episode_id"], breach["allocation_rule"]) == (str(episode), "referring")
    async with governance.client.get(f"{ui_hub.base_url}/ui/governance/cwt?from=2026-02-30") as resp:
        assert resp.status == 400, "a bad date is a page saying so, not a server error"
        assert "&#39;from&#39; must be a date YYYY-MM-DD; showing the last twelve months" in await resp.text()
    for subject in (OPS, SMDT, TRUST):
        other = await signed_in(subject)
        for path in ("/ui/governance/cwt", "/ui/governance/cwt.csv", "/ui/governance/cwt-breaches.csv"):
            async with other.client.get(f"{ui_hub.base_url}{path}?{PERIOD}", allow_redirects=False) as resp:
                assert resp.status == 403, (subject, path)
                assert "Breach allocated" not in await resp.text()
