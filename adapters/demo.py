"""The East Anglia scenario, played against a running hub by trust clients (CONTRACT.md section 7).

Every referring trust's MDT refers a patient to the SMDT at RGT (a retry returns the original receipt; a
copy altered after signing is refused). RGT collects and acknowledges each referral, and the SMDT answers:
accepted, declined, or more information needed (that referral comes back with more and is then accepted).
For an accepted patient the whole handover follows: transfer of care to the RGT surgeon, accepted; surgery;
the discharge summary back; transfer of care back to the named local clinician, accepted. Who holds clinical
responsibility is checked through the episodes API after every step. Business acknowledgements flow
throughout. Finally the audit log is verified against a checkpoint a trust kept and every receipt, and the
governance summary is printed. Every step is checked; the result is a table and a pass/fail.

Cancer waiting times (issue 24): four more patients on back-dated cancer pathways (the clock start and the
decision and treatment dates are message content, so the freshness rules allow it) are referred, accepted and
treated so that their breach allocation falls under each rule the message flow can reach: `pending` (not treated
yet), `shared` (day 30: met 62, transferred by day 38), `treating` (day 45: met 62, transferred after day 38) and
`referring` (day 70: breached, transferred after day 38, treated within 24 days). `solo` (one trust referring and
treating) and `no-ipt-date` (treated with no IPT received date) cannot arise between two trusts on the hub: every
referral is addressed to another trust, and a cancer pathway referral is refused without the data set whose
acceptance dates the IPT.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.table import Table

from adapters import builders
from adapters.cwt_items import london_today
from adapters.epr_simulator import EprSimulator
from adapters.history import HistoryReport
from adapters.pathway import Pathway
from adapters.trust_client import TrustClient
from service.auditlog.verify_cli import verify_database
from service.keystore import load_private_jwk
from service.registry import Participant, Registry
from service.staff import StaffRole, mint_dev_staff_token

SURNAMES = ["Ashdown", "Blakeney", "Cley", "Dersingham", "Elveden", "Felixstowe", "Grantchester", "Hunstanton"]
GIVEN_NAMES = ["Alex", "Robin", "Jordan"]  # with SURNAMES: a different name for each of the first 24 patients
AWAITING_SEED = 8  # the patient still awaiting the SMDT (seeds 1..7 are the referrers' patients)
# Cancer waiting times: (seed, pathway day at the transfer, treated?, the allocation rule expected)
CWT_PATHWAYS = (
    (9, 20, False, "pending"),
    (10, 30, True, "shared"),
    (11, 45, True, "treating"),
    (12, 70, True, "referring"),
)
DECISIONS = {1: "accepted", 2: "declined", 3: "more-information-needed"}  # by referrer's position; else accepted


@dataclass
class Step:
    trust: str
    action: str
    detail: str
    ok: bool


@dataclass
class DemoReport:
    steps: list[Step] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    def check(self, trust: str, action: str, ok: bool, detail: str = "") -> bool:
        self.steps.append(Step(trust, action, detail, ok))
        return ok

    @property
    def passed(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)

    def table(self) -> Table:
        table = Table(title="Handover demo: East Anglia liver metastases pathway")
        for column in ("trust", "step", "detail", "result"):
            table.add_column(column)
        for step in self.steps:
            table.add_row(step.trust, step.action, step.detail, "[green]ok[/]" if step.ok else "[red]FAILED[/]")
        return table


@dataclass
class _Demo:
    session: aiohttp.ClientSession
    base_url: str
    registry: Registry
    keys_dir: Path
    event_system: str
    report: DemoReport
    clients: dict[str, TrustClient] = field(default_factory=dict)
    stories: dict[str, Pathway] = field(default_factory=dict)
    receipts: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def centre(self) -> TrustClient:
        return self.clients[self.registry.centre().ods]

    async def send(self, ods: str, bundle: dict[str, Any], action: str, *, detail: str = "") -> bool:
        client = self.clients[ods]
        result = await client.send(client.sign(bundle))
        if result.accepted:
            self.receipts.append((f"{ods} {action}", result.body))
        shown = detail or (f"HTTP {result.status}" if result.accepted else ", ".join(result.error_codes))
        return self.report.check(ods, action, result.accepted, shown)

    async def collect(self, ods: str) -> list[dict[str, Any]]:
        """Fetch, verify and acknowledge every message waiting for `ods`; business-acknowledge all but acks."""
        client, received = self.clients[ods], []
        for item in await client.inbox():
            bundle, signature = await client.fetch(item["id"])
            await client.acknowledge(item["id"])
            received.append(bundle)
            if item["event"] != "acknowledgement":
                ack = builders.acknowledgement(self.event_system, ods, self.name(ods), bundle)
                await self.send(ods, ack, f"acknowledges {item['event']} from {signature.owner_ods}")
        return received

    async def responsible(self, story: Pathway) -> tuple[str, str, str]:
        token = mint_dev_staff_token(self.keys_dir, "demo.governance", StaffRole.GOVERNANCE)
        url = f"{self.base_url}/episodes?nhs-number={story.patient.nhs_number}"
        async with self.session.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
            episodes = (await resp.json())["episodes"]
        if len(episodes) != 1:
            return ("?", "?", "no episode")
        episode = episodes[0]
        return episode["responsible"]["ods"], episode["responsible"]["clinician"], episode["state"]

    async def cancer_waiting_times(self, story: Pathway) -> dict[str, Any] | None:
        """The episode's `cancer_waiting_times` as governance sees it (None when not found)."""
        token = mint_dev_staff_token(self.keys_dir, "demo.governance", StaffRole.GOVERNANCE)
        headers = {"Authorization": f"Bearer {token}"}
        url = f"{self.base_url}/episodes?nhs-number={story.patient.nhs_number}"
        async with self.session.get(url, headers=headers) as resp:
            episodes = (await resp.json())["episodes"]
        if len(episodes) != 1:
            return None
        token = mint_dev_staff_token(self.keys_dir, "demo.governance", StaffRole.GOVERNANCE)
        headers = {"Authorization": f"Bearer {token}"}
        async with self.session.get(f"{self.base_url}/episodes/{episodes[0]['id']}", headers=headers) as resp:
            found: dict[str, Any] | None = (await resp.json()).get("cancer_waiting_times")
            return found

    def name(self, ods: str) -> str:
        participant = self.registry.participant(ods)
        return participant.name if participant else ods


async def play_scenario(
    base_url: str,
    registry: Registry,
    keys_dir: Path,
    event_system: str,
    *,
    dsn: str | None = None,
    pushed: EprSimulator | None = None,
    pushed_port: int | None = None,
    history: Callable[[], Awaitable[HistoryReport]] | None = None,
) -> DemoReport:
    """Play the scenario against the hub at `base_url`; a failed check is recorded, never raised. With `dsn`
    the audit log is verified offline at the end. `history`, if given, first plays the year before today
    (adapters/history.py)."""
    report = DemoReport()
    centre = registry.centre()
    if history is not None:
        played = await history()
        report.check("network", "a year of history through the intake", played.ok, played.summary())
    async with aiohttp.ClientSession() as session:
        demo = _Demo(session, base_url, registry, keys_dir, event_system, report)
        for participant in [centre, *registry.referrers()]:
            demo.clients[participant.ods] = TrustClient(
                session, base_url, participant.ods, load_private_jwk(keys_dir, participant.ods), registry
            )
        await _referrals(demo)
        await demo.collect(centre.ods)
        await _outcomes(demo)
        if pushed is not None and pushed_port is not None:
            await _recipient_down_then_delivered(demo, pushed, pushed_port)
        first = registry.referrers()[0].ods
        await _journey(demo, demo.stories[first])
        for referrer in registry.referrers():
            await demo.collect(referrer.ods)
        await _awaiting_smdt(demo)
        await _cancer_waiting_times(demo)
        await demo.collect(centre.ods)
        for referrer in registry.referrers():
            await demo.collect(referrer.ods)
        if dsn is not None:
            await _audit(demo, dsn)
        await _governance(demo)
    return report


def patient_name(seed: int) -> tuple[str, str]:
    """Patient number `seed`'s family and given name: no two of the demo's patients share a name, so a page that
    shows one patient's name never seems to show another's (the staff pages' tests look for names)."""
    family = SURNAMES[seed % len(SURNAMES)]
    return family, GIVEN_NAMES[seed // len(SURNAMES) % len(GIVEN_NAMES)]


def _story(demo: _Demo, seed: int, referrer: Participant, *, pathway_start: date | None = None) -> Pathway:
    """Patient number `seed` (a synthetic NHS number and name) referred by `referrer` to the centre."""
    centre = demo.registry.centre()
    family, given = patient_name(seed)
    patient = builders.SyntheticPatient(
        builders.synthetic_nhs_number(seed * 7919), family, given, "1958-03-14", "female"
    )
    return Pathway(
        demo.event_system,
        referrer.ods,
        referrer.name,
        centre.ods,
        centre.name,
        patient,
        builders.Clinician(f"Localdoc{seed}", "Sam", f"70{seed:05d}"),
        builders.Clinician(f"Keyworker{seed}", "Jo", f"71{seed:05d}"),
        pathway_start=pathway_start,
    )


async def _referrals(demo: _Demo) -> None:
    for seed, referrer in enumerate(demo.registry.referrers(), start=1):
        story = _story(demo, seed, referrer)
        demo.stories[referrer.ods] = story
        referral = story.referral()
        client = demo.clients[referrer.ods]
        signed = client.sign(referral)
        result = await client.send(signed)
        if demo.report.check(referrer.ods, "referral → RGT SMDT", result.accepted, f"HTTP {result.status}"):
            demo.receipts.append((f"{referrer.ods} referral", result.body))
        if seed == 1 and result.accepted:
            again = await client.send(signed, request_id=result.request_id)
            demo.report.check(
                referrer.ods, "retry with the same X-Request-ID", again.body == result.body, "original receipt returned"
            )
        if seed == 2:
            tampered = client.sign(
                {**referral, "identifier": {**referral["identifier"], "value": f"urn:uuid:{uuid.uuid4()}"}}
            )
            tampered["entry"][1]["resource"]["note"][0]["text"] += "!"
            refused = await client.send(tampered)
            demo.report.check(
                referrer.ods,
                "copy altered after signing is refused",
                refused.status == 401 and "signature-invalid" in refused.error_codes,
                f"HTTP {refused.status} {', '.join(refused.error_codes[:1])}",
            )


async def _outcomes(demo: _Demo) -> None:
    centre = demo.registry.centre().ods
    for position, referrer in enumerate(demo.registry.referrers(), start=1):
        story = demo.stories[referrer.ods]
        decision = DECISIONS.get(position, "accepted")
        await demo.send(centre, story.outcome(decision), f"SMDT outcome: {decision}", detail=referrer.ods)
        if decision == "more-information-needed":
            await demo.collect(referrer.ods)
            again = story.referral_again()
            await demo.send(referrer.ods, again, "re-refers with more information")
            await demo.collect(centre)
            await demo.send(centre, story.outcome("accepted"), "SMDT outcome: accepted", detail=referrer.ods)
        expected = {"accepted": "accepted", "declined": "declined-closed"}.get(decision, "accepted")
        ods, clinician, state = await demo.responsible(story)
        demo.report.check(
            referrer.ods,
            "episode after the SMDT",
            state == expected and ods == referrer.ods,
            f"{state}; responsible: {clinician} at {ods}",
        )


async def _recipient_down_then_delivered(demo: _Demo, epr: EprSimulator, port: int) -> None:
    """The trust with a push endpoint has been down all along: its messages wait in the outbox, retried with
    backoff. Its EPR comes back; the relay delivers everything, each message once."""
    async with demo.session.get(f"{demo.base_url}/metrics") as resp:
        waiting = _metric(await resp.text(), "handover_messages_undelivered")
    demo.report.check(epr.ods, "EPR down: messages wait in the outbox", waiting >= 2, f"{waiting:g} undelivered")
    await epr.start(port)
    await epr.wait_for(2, within_seconds=90)
    events = sorted(b["entry"][0]["resource"]["eventCoding"]["code"] for b in epr.received)
    identifiers = [b["identifier"]["value"] for b in epr.received]
    once = len(set(identifiers)) == len(identifiers)
    demo.report.check(epr.ods, "EPR back: pushed, each once", len(events) >= 2 and once, ", ".join(events))
    outcome = next(
        (b for b in epr.received if b["entry"][0]["resource"]["eventCoding"]["code"] == "referral-outcome"), None
    )
    if outcome is not None:
        ack = builders.acknowledgement(demo.event_system, epr.ods, demo.name(epr.ods), outcome)
        await demo.send(epr.ods, ack, "acknowledges the SMDT outcome (from its EPR)")


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return float("nan")


async def _journey(demo: _Demo, story: Pathway) -> None:
    local, centre = story.referrer_ods, story.centre_ods
    steps = [
        (local, story.transfer_to_centre, "transfer of care → RGT surgeon", (local, "transfer-requested")),
        (centre, story.centre_answers, "RGT surgeon accepts the transfer", (centre, "at-centre")),
        (centre, story.discharge_summary, "surgery done; discharge summary sent", (centre, "discharge-summary-sent")),
        (centre, story.transfer_back, "transfer of care back → local clinician", (centre, "transfer-back-requested")),
        (local, story.referrer_answers, "local clinician accepts", (local, "closed")),
    ]
    for sender, build, action, (holder, state) in steps:
        await demo.send(sender, build(), action)
        ods, clinician, now = await demo.responsible(story)
        demo.report.check(
            story.referrer_ods, "  responsibility", ods == holder and now == state, f"{clinician} at {ods} ({now})"
        )
        receiver = centre if sender == local else local
        await demo.collect(receiver)


async def _awaiting_smdt(demo: _Demo) -> None:
    """A referral the SMDT has not discussed yet, whose cancer pathway began 64 days ago: its day-62 treatment
    target has passed, so the staff pages' worklist has an overdue item to show (and day 38 was missed too)."""
    referrer = demo.registry.referrers()[0]
    story = _story(demo, AWAITING_SEED, referrer, pathway_start=date.today() - timedelta(days=64))
    await demo.send(referrer.ods, story.referral(), "referral (pathway day 64) awaits the SMDT")
    ods, _, state = await demo.responsible(story)
    demo.report.check(referrer.ods, "  awaiting the SMDT", state == "referred" and ods == referrer.ods, state)


async def _cancer_waiting_times(demo: _Demo) -> None:
    """One back-dated cancer pathway per allocation rule the message flow can reach, each checked through the
    episode's `cancer_waiting_times`."""
    referrers, today = demo.registry.referrers(), london_today()
    for seed, day, treated, rule in CWT_PATHWAYS:
        referrer = referrers[seed % len(referrers)]
        story = _story(demo, seed, referrer, pathway_start=today - timedelta(days=day))
        story.decision_to_refer = today - timedelta(days=min(day, 5))
        story.decision_to_treat = today
        steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            (referrer.ods, story.referral),
            (story.centre_ods, functools.partial(story.outcome, "accepted")),
        ]
        if treated:
            steps += [
                (referrer.ods, story.transfer_to_centre),
                (story.centre_ods, story.centre_answers),
                (story.centre_ods, story.discharge_summary),
            ]
        for sender, build in steps:
            bundle = build()
            await demo.send(sender, bundle, f"cancer pathway (day {day}): {_event(bundle)}", detail=rule)
        cwt = await demo.cancer_waiting_times(story)
        shown = "no CWT" if cwt is None else f"{cwt['allocation_rule']} {cwt['allocation']}; d38 {cwt['d38']}"
        demo.report.check(
            referrer.ods, "  breach allocation", cwt is not None and cwt["allocation_rule"] == rule, shown
        )


def _event(bundle: dict[str, Any]) -> str:
    return str(bundle["entry"][0]["resource"]["eventCoding"]["code"])


async def _audit(demo: _Demo, dsn: str) -> None:
    async with demo.session.get(f"{demo.base_url}/audit/checkpoint") as resp:
        witnessed = await resp.text()  # as a trust would keep it
    report = await verify_database(dsn, demo.registry, [("RM1's copy", witnessed)], demo.receipts)
    demo.report.check(
        "hub",
        "audit verify",
        report.ok,
        f"{report.tree_size} entries, {report.receipts} receipts, {report.trusted} witnessed checkpoint"
        + ("" if report.ok or report.first is None else f"; {report.first.describe()}"),
    )


async def _governance(demo: _Demo) -> None:
    token = mint_dev_staff_token(demo.keys_dir, "demo.governance", StaffRole.GOVERNANCE)
    async with demo.session.get(
        f"{demo.base_url}/governance/summary", headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        demo.report.summary = await resp.json() if resp.status == 200 else {}
    referred = sum(row["referrals"] for row in demo.report.summary.get("trusts", []))
    demo.report.check("governance", "summary", referred >= len(demo.registry.referrers()), f"{referred} referrals")


def governance_table(summary: dict[str, Any]) -> Table:
    table = Table(title="Governance summary (per referring trust and year; IOG: 200 resections a year)")
    for column in (
        "trust",
        "year",
        "referrals",
        "accepted",
        "resections",
        "median days to SMDT",
        "median h to accept transfer",
        "overdue",
    ):
        table.add_column(column, justify="right")
    for row in summary.get("trusts", []):
        table.add_row(
            row["trust"],
            str(row["year"]),
            str(row["referrals"]),
            str(row["accepted"]),
            str(row["resections"]),
            _shown(row["median_days_referral_to_smdt_outcome"]),
            _shown(row["median_hours_transfer_acceptance"]),
            str(row["overdue"]),
        )
    for row in summary.get("network", []):
        table.add_row(
            "network",
            str(row["year"]),
            str(row["referrals"]),
            str(row["accepted"]),
            f"{row['resections']} / {row['iog_resections_target']}",
            "",
            "",
            "",
        )
    return table


def _shown(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def print_report(report: DemoReport, console: Console) -> None:
    console.print(report.table())
    if report.summary:
        console.print(governance_table(report.summary))
    verdict = "[bold green]every step checked out[/]" if report.passed else "[bold red]some steps FAILED[/]"
    console.print(f"{sum(s.ok for s in report.steps)}/{len(report.steps)} checks passed: {verdict}")
