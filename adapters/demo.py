"""The East Anglia scenario, played against a running hub by trust clients (CONTRACT.md section 7).

This slice: every referring trust's MDT sends a signed referral to the SMDT at RGT and gets a hub-signed
receipt; a retry with the same X-Request-ID returns the original receipt; a copy altered after signing is
refused (401 signature-invalid); RGT pulls its mailbox, verifies
each referral's signature, acknowledges it and sends a business acknowledgement back; each referrer pulls
and acknowledges that. Every step is checked; the result is a table and a pass/fail.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.table import Table

from adapters import builders
from adapters.trust_client import TrustClient
from service.keystore import load_private_jwk
from service.registry import Registry

SURNAMES = ["Ashdown", "Blakeney", "Cley", "Dersingham", "Elveden", "Felixstowe", "Grantchester", "Hunstanton"]
CENTRE_CLINICIAN = builders.Clinician("Fenwright", "Morgan", "7100001")


@dataclass
class Step:
    trust: str
    action: str
    detail: str
    ok: bool


@dataclass
class DemoReport:
    steps: list[Step] = field(default_factory=list)

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


async def play_scenario(base_url: str, registry: Registry, keys_dir: Path, event_system: str) -> DemoReport:
    """Play the scenario against the hub at `base_url`; never raises for a failed check, records it."""
    report = DemoReport()
    centre = registry.centre()
    async with aiohttp.ClientSession() as session:
        clients = {
            p.ods: TrustClient(session, base_url, p.ods, load_private_jwk(keys_dir, p.ods), registry)
            for p in [centre, *registry.referrers()]
        }
        sent: dict[str, dict[str, Any]] = {}
        for seed, referrer in enumerate(registry.referrers(), start=1):
            patient = builders.SyntheticPatient(
                builders.synthetic_nhs_number(seed * 7919),
                SURNAMES[seed % len(SURNAMES)],
                "Alex",
                "1958-03-14",
                "female",
            )
            bundle = builders.referral(
                event_system,
                sender_ods=referrer.ods,
                sender_name=referrer.name,
                receiver_ods=centre.ods,
                receiver_name=centre.name,
                patient=patient,
                referrer=builders.Clinician("Referrer", "Sam", f"70{seed:05d}"),
                key_worker=builders.Clinician("Keyworker", "Jo", f"71{seed:05d}"),
            )
            signed = clients[referrer.ods].sign(bundle)
            result = await clients[referrer.ods].send(signed)
            params = _params(clients[referrer.ods], result.body, signed) if result.accepted else {}
            if report.check(
                referrer.ods,
                "referral → RGT",
                result.accepted,
                f"audit index {params.get('audit-index')}" if result.accepted else str(result.error_codes),
            ):
                sent[bundle["identifier"]["value"]] = signed
            if seed == 1 and result.accepted:
                again = await clients[referrer.ods].send(signed, request_id=result.request_id)
                report.check(
                    referrer.ods,
                    "retry, same X-Request-ID",
                    again.body == result.body,
                    "original receipt returned" if again.body == result.body else "different answer",
                )
            if seed == 2:
                await _tampered_message_is_refused(report, clients[referrer.ods], bundle)
        await _centre_collects(report, clients[centre.ods], sent, event_system, centre.name)
        for referrer in registry.referrers():
            await _referrer_collects(report, clients[referrer.ods])
    return report


async def _tampered_message_is_refused(report: DemoReport, client: TrustClient, bundle: dict[str, Any]) -> None:
    """Sign a fresh copy, then change one character after signing: the hub must refuse it."""
    tampered = client.sign({**bundle, "identifier": {**bundle["identifier"], "value": f"urn:uuid:{uuid.uuid4()}"}})
    tampered["entry"][1]["resource"]["note"][0]["text"] += "!"
    result = await client.send(tampered)
    refused = result.status == 401 and "signature-invalid" in result.error_codes
    report.check(client.ods, "tampered copy refused", refused, f"HTTP {result.status} {', '.join(result.error_codes)}")


def _params(client: TrustClient, receipt: Mapping[str, Any], sent: Mapping[str, Any]) -> dict[str, Any]:
    return client.check_receipt(receipt, sent)


async def _centre_collects(
    report: DemoReport, centre: TrustClient, sent: dict[str, dict[str, Any]], event_system: str, centre_name: str
) -> None:
    waiting = dict(sent)
    for item in await centre.inbox():
        if item["bundle_identifier"] not in waiting:
            continue
        bundle, signature = await centre.fetch(item["id"])
        original = waiting.pop(item["bundle_identifier"])
        same = bundle == original
        report.check(
            item["sender"], "RGT fetches, verifies signature", same, f"signed by {signature.owner_ods}, {signature.alg}"
        )
        ack = await centre.acknowledge(item["id"])
        report.check(item["sender"], "RGT acknowledges receipt", ack.get("state") == "delivered", "mailbox ack")
        reply = centre.sign(builders.acknowledgement(event_system, centre.ods, centre_name, bundle))
        result = await centre.send(reply)
        report.check(item["sender"], "RGT business ack → referrer", result.accepted, "acknowledgement (ok)")
    for identifier in waiting:
        report.check(
            sent[identifier]["entry"][0]["resource"]["sender"]["identifier"]["value"],
            "RGT fetches, verifies signature",
            False,
            "referral not in RGT's inbox",
        )


async def _referrer_collects(report: DemoReport, referrer: TrustClient) -> None:
    acks = [item for item in await referrer.inbox() if item["event"] == "acknowledgement"]
    for item in acks:
        bundle, _ = await referrer.fetch(item["id"])
        ok = bundle["entry"][0]["resource"]["response"]["code"] == "ok"
        done = await referrer.acknowledge(item["id"])
        report.check(referrer.ods, "collects RGT's acknowledgement", ok and done.get("state") == "delivered", "ok")
    if not acks:
        report.check(referrer.ods, "collects RGT's acknowledgement", False, "none arrived")


def print_report(report: DemoReport, console: Console) -> None:
    console.print(report.table())
    verdict = "[bold green]every step checked out[/]" if report.passed else "[bold red]some steps FAILED[/]"
    console.print(f"{sum(s.ok for s in report.steps)}/{len(report.steps)} checks passed: {verdict}")
