"""Where one accepted message's CPU goes inside the hub, stage by stage, beside the ceiling's own stages.

`make bench-load` measures the hub's CPU per accepted message as a whole (bench/load_cpu.py). This module takes
the same signed referrals through each CPU-only stage of the intake in this process, with no network and no
database, and reports microseconds of CPU per message for each: what is left of the hub's whole figure is the
HTTP edge, the database round trips and the episode tracking. The ceiling's stages (bench/load_ceiling.py) are
timed the same way, so the table shows which work only the hub does, and how much of it there is.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fhir.resources.R4B.bundle import Bundle

from bench.load_hub import BenchNetwork
from bench.load_messages import Request, signed_referrals
from service.crypto.envelope import PayloadIdentity
from service.crypto.kek import FileKeyring, create_kek_file
from service.crypto.vault import PayloadVault
from service.identity.keystore import load_private_jwk
from service.identity.signing import verify_bundle_signature
from service.identity.tokens import verify_bearer_token
from service.intake.message import InboundMessage, read_inbound
from service.receipts import ReceiptFacts, build_signed_receipt
from service.strictjson import parse_strict_json
from service.terminology import load_code_system
from service.validation import load_validator


@dataclass(frozen=True)
class Stage:
    name: str
    hub: bool
    ceiling: bool
    run: Callable[[Request], object]


@dataclass(frozen=True)
class StageCost:
    name: str
    hub: bool
    ceiling: bool
    microseconds: float
    low: float
    high: float


def stages_of(network: BenchNetwork, directory: Path) -> list[Stage]:
    registry = network.registry
    validator = load_validator()
    events = load_code_system("handover-event")
    kek_path = directory / "kek.json"
    create_kek_file(kek_path)
    vault = PayloadVault(FileKeyring(kek_path))
    hub_key = load_private_jwk(network.keys_dir, "hub")
    loop = asyncio.new_event_loop()

    def read(request: Request) -> InboundMessage:
        return read_inbound(request.body, registry.key, validator.conformance, events)

    def validate(request: Request) -> object:
        inbound = read(request)
        inbound.patient  # noqa: B018 - intake reads the patient before the profiles
        return validator.validate(inbound.doc, inbound.index)

    def seal(request: Request) -> object:
        identity = PayloadIdentity(uuid.uuid4(), request.sender, registry.centre().ods)
        return loop.run_until_complete(vault.seal(request.body, identity))

    def receipt(request: Request) -> object:
        facts = ReceiptFacts(
            uuid.uuid4(), "0" * 64, 1, b"\0" * 32, datetime.now(UTC), request.sender, str(uuid.uuid4()), "urn:x"
        )
        return build_signed_receipt(facts, events.url, hub_key)

    def ceiling_parse(request: Request) -> object:
        doc = parse_strict_json(request.body)
        verify_bundle_signature(doc, registry.key)
        return Bundle.model_validate(doc)

    def token(request: Request) -> object:
        return verify_bearer_token(request.token, registry.key, now=_now())

    def one_after_another(request: Request) -> object:
        """The hub's CPU-only stages on one message before the next, as the hub runs them (the rows above each
        run one stage over every message: their caches stay warm with that stage's code and data)."""
        return token(request), validate(request), seal(request), receipt(request)

    return [
        Stage("bearer token verified", True, False, token),
        Stage("strict JSON parse", True, True, lambda r: parse_strict_json(r.body)),
        Stage(
            "parse + signature verified",
            True,
            True,
            lambda r: verify_bundle_signature(parse_strict_json(r.body), registry.key),
        ),
        Stage("read once (parse, signature, index, facts)", True, False, read),
        Stage("read once + patient + profiles", True, False, validate),
        Stage("payload sealed", True, False, seal),
        Stage("receipt built and signed", True, False, receipt),
        Stage("parse + signature + R4B model parse", False, True, ceiling_parse),
        Stage(HUB_STAGES_IN_TURN, True, False, one_after_another),
    ]


HUB_STAGES_IN_TURN = "the four hub stages one after another per message"
"""Token, read + patient + profiles, seal and receipt on each message in turn, as the hub runs them: the same
instructions as the four rows, more CPU than their sum."""


def _now() -> datetime:
    return datetime.now(UTC)


def _cpu_microseconds(run: Callable[[Request], object], requests: Sequence[Request]) -> float:
    started = time.process_time()
    for request in requests:
        run(request)
    return 1e6 * (time.process_time() - started) / len(requests)


def stage_costs(directory: Path, *, messages: int = 300, rounds: int = 5) -> list[StageCost]:
    """CPU microseconds per message for each stage: the median of `rounds` passes over `messages` referrals."""
    network = BenchNetwork.create(directory / "stages")
    requests = signed_referrals(network.registry, network.keys_dir, messages)
    stages = stages_of(network, directory)
    for stage in stages:  # warm caches (key imports, compiled profiles) before any timing
        _cpu_microseconds(stage.run, requests[:20])
    samples: dict[str, list[float]] = {stage.name: [] for stage in stages}
    for _ in range(rounds):  # interleaved, so a slow moment of the machine spreads over every stage
        for stage in stages:
            samples[stage.name].append(_cpu_microseconds(stage.run, requests))
    return [
        StageCost(
            stage.name,
            stage.hub,
            stage.ceiling,
            statistics.median(samples[stage.name]),
            min(samples[stage.name]),
            max(samples[stage.name]),
        )
        for stage in stages
    ]


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        for cost in stage_costs(Path(directory)):
            where = "hub+ceiling" if cost.hub and cost.ceiling else "hub" if cost.hub else "ceiling"
            print(f"{cost.name:45} {where:12} {cost.microseconds:8.0f} us ({cost.low:.0f}-{cost.high:.0f})")


if __name__ == "__main__":
    main()
