"""`make compose-check` (issue 27, item 5): docker-compose.yml built and started on this machine, then a smoke
check with real signed traffic, outside `make test`:

1. the images are built (the base is a build argument: python:3.11-slim, or one made from Debian's packages
   where Docker Hub is unreachable) and etcd, two Patroni-managed PostgreSQL nodes and two hubs are started;
2. a referral signed by RM1 with the project's trust client goes in through hub1; its hub-signed receipt comes
   out and is checked; RGT reads it from its inbox through hub2, checks RM1's signature and acknowledges it;
3. the Patroni leader's container is killed (SIGKILL); a second signed referral is sent as a careful client
   would (the same X-Request-ID on every try, alternating hubs) until it is receipted by the new primary, and
   RGT fetches and acknowledges it through hub1;
4. the killed node is started again: Patroni rewinds it (pg_rewind) and it streams as the synchronous standby;
   a third referral is receipted with both nodes back. The hubs must not have restarted.

Development keys are made for the run in a temporary directory (never in the checkout) and removed after it,
with the stack and its volumes (`--keep` leaves the stack running). Prints each step with its time.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from adapters import builders
from adapters.trust_client import SendResult, TrustClient
from deploy.compose.stack import (
    PROJECT,
    DevKeys,
    Stack,
    StackError,
    build_arguments,
    choose_base_image,
    docker_ready,
    say,
)
from service.keystore import load_private_jwk
from service.registry import Registry, load_registry
from service.terminology import load_code_system

SENDER, RECIPIENT = "RM1", "RGT"
HUBS = ("hub1", "hub2")
READY_WITHIN_SECONDS = 240
FAILOVER_WITHIN_SECONDS = 180
REJOIN_WITHIN_SECONDS = 120


class CheckFailedError(Exception):
    """The stack did not do what the smoke check expects: one sentence saying what."""


class Clock:
    """Seconds since the check started, and the time each step took."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.steps: list[tuple[str, float]] = []

    def now(self) -> float:
        return time.monotonic() - self.start

    def step(self, name: str, began: float) -> None:
        took = time.monotonic() - began
        self.steps.append((name, took))
        say(f"[{self.now():6.1f} s] {name}: {took:.1f} s")


@dataclass
class Delivery:
    """One referral's journey: sent (until receipted), then read and acknowledged by the recipient."""

    receipt: dict[str, Any]
    attempts: int
    unavailable: int  # 503s
    unanswered: int  # no HTTP answer (connection refused or reset, timed out)
    first_202_at: float  # epoch seconds


def synthetic_referral(registry: Registry) -> dict[str, Any]:
    """A referral RM1 → RGT about a synthetic patient (NHS number from the 999 test range)."""

    def name(ods: str) -> str:
        participant = registry.participant(ods)
        return participant.name if participant is not None else ods

    patient = builders.SyntheticPatient(
        builders.synthetic_nhs_number(secrets.randbelow(10**6)), "Composecheck", "Alex", "1961-05-02", "female"
    )
    return builders.referral(
        load_code_system("handover-event").url,
        sender_ods=SENDER,
        sender_name=name(SENDER),
        receiver_ods=RECIPIENT,
        receiver_name=name(RECIPIENT),
        patient=patient,
        referrer=builders.Clinician("Referrer", "Sam", "7000001"),
        key_worker=builders.Clinician("Keyworker", "Jo", "7000002"),
    )


async def send_until_receipted(
    clients: Mapping[str, TrustClient], order: tuple[str, ...], signed: dict[str, Any], within: float
) -> Delivery:
    """Send `signed` as a careful client: the same X-Request-ID on every try, the next hub after a 503 or no
    answer, half a second apart, until a 202 (its receipt checked by the trust client) or `within` seconds."""
    request_id = str(uuid.uuid4())
    give_up = time.monotonic() + within
    unavailable = unanswered = 0
    last = "no answer yet"
    for attempts, hub in enumerate(itertools.cycle(order), start=1):
        if time.monotonic() > give_up:
            raise CheckFailedError(f"no receipt within {within:.0f} s after {attempts - 1} tries; last: {last}")
        try:
            result: SendResult = await clients[hub].send(signed, request_id=request_id)
        except (aiohttp.ClientError, TimeoutError) as err:
            unanswered += 1
            last = f"{hub}: {type(err).__name__}"
        else:
            if result.accepted:
                return Delivery(result.body, attempts, unavailable, unanswered, time.time())
            if result.status != 503:
                raise CheckFailedError(f"{hub} refused the referral: HTTP {result.status} {result.error_codes}")
            unavailable += 1
            last = f"{hub}: HTTP 503 {result.error_codes}"
        await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


async def receive(recipient: TrustClient, message_id: str, hub: str) -> None:
    """The recipient finds `message_id` in its inbox, verifies its sender's signature, and acknowledges it."""
    waiting = {item["id"] for item in await recipient.inbox()}
    if message_id not in waiting:
        raise CheckFailedError(f"{message_id} is not in {RECIPIENT}'s inbox on {hub}")
    bundle, signature = await recipient.fetch(message_id)
    await recipient.acknowledge(message_id)
    sender = bundle["entry"][0]["resource"]["sender"]["identifier"]["value"]
    verified = f"its signature (key {signature.kid}) verified"
    say(f"  {RECIPIENT} read {message_id} on {hub}: from {sender}, {verified}, acknowledged")


async def wait_until_ready(stack: Stack, clock: Clock) -> None:
    began = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        for hub in HUBS:
            while True:
                try:
                    async with session.get(f"{stack.url(hub)}/readyz") as response:
                        if response.status == 200:
                            break
                except (aiohttp.ClientError, TimeoutError):
                    pass
                if time.monotonic() - began > READY_WITHIN_SECONDS:
                    raise CheckFailedError(f"{hub} was not ready within {READY_WITHIN_SECONDS} s")
                await asyncio.sleep(1)
    clock.step("both hubs ready (/readyz 200)", began)


def leader(stack: Stack, ask: str) -> str:
    members = stack.patroni_members(ask)
    leaders = [m["Member"] for m in members if m.get("Role") == "Leader" and m.get("State") == "running"]
    if len(leaders) != 1:
        raise CheckFailedError(f"Patroni (asked on {ask}) names no single running leader: {members}")
    return str(leaders[0])


async def rejoined(stack: Stack, node: str, leader_node: str) -> None:
    """Wait until Patroni reports `node` as the streaming synchronous standby (pg_rewind, then replication)."""
    give_up = time.monotonic() + REJOIN_WITHIN_SECONDS
    while time.monotonic() < give_up:
        members = {m["Member"]: m for m in stack.patroni_members(leader_node)}
        member = members.get(node, {})
        if member.get("Role") == "Sync Standby" and member.get("State") == "streaming":
            return
        await asyncio.sleep(2)
    raise CheckFailedError(f"{node} did not rejoin as the synchronous standby within {REJOIN_WITHIN_SECONDS} s")


@dataclass
class Trusts:
    """RM1 sending referrals and RGT receiving them, each through either hub, with the project's trust client."""

    registry: Registry
    senders: dict[str, TrustClient]
    recipients: dict[str, TrustClient]

    @classmethod
    def connect(cls, session: aiohttp.ClientSession, stack: Stack, keys: DevKeys) -> Trusts:
        registry = load_registry(keys.network)

        def clients(ods: str) -> dict[str, TrustClient]:
            key = load_private_jwk(keys.private, ods)
            return {hub: TrustClient(session, stack.url(hub), ods, key, registry) for hub in HUBS}

        return cls(registry, clients(SENDER), clients(RECIPIENT))

    async def refer(self, via: tuple[str, ...], within: float) -> tuple[dict[str, Any], Delivery]:
        """A new signed referral sent through `via` until receipted; the receipt's checked parameters."""
        signed = self.senders[via[0]].sign(synthetic_referral(self.registry))
        delivered = await send_until_receipted(self.senders, via, signed, within)
        return self.senders[via[0]].check_receipt(delivered.receipt, signed), delivered

    async def read(self, receipt: Mapping[str, Any], hub: str) -> None:
        await receive(self.recipients[hub], str(receipt["message-id"]), hub)


async def before_failover(trusts: Trusts, clock: Clock) -> None:
    began = time.monotonic()
    receipt, _ = await trusts.refer(("hub1",), within=30)
    say(
        f"  receipt from hub1: message {receipt['message-id']}, audit index {receipt['audit-index']}, "
        f"sha256 {str(receipt['sha256'])[:16]}…, accepted at {receipt['accepted-at']}"
    )
    await trusts.read(receipt, "hub2")
    clock.step("signed referral in through hub1, receipt out, read on hub2", began)


async def failover(stack: Stack, trusts: Trusts, clock: Clock) -> tuple[str, str]:
    """Kill the leader, get a referral receipted by the new one; the old and the new leader's names."""
    old = leader(stack, "pg1")
    survivor = "pg2" if old == "pg1" else "pg1"
    began = time.monotonic()
    stack.kill(old)
    killed_at = time.time()  # epoch seconds, to compare with Patroni's log
    clock.step(f"Patroni leader {old} killed (SIGKILL)", began)

    began = time.monotonic()
    receipt, delivered = await trusts.refer(("hub2", "hub1"), within=FAILOVER_WITHIN_SECONDS)
    say(
        f"  receipt after the failover: message {receipt['message-id']}, audit index {receipt['audit-index']}; "
        f"{delivered.attempts} tries: {delivered.unavailable} answered 503, {delivered.unanswered} not at all"
    )
    clock.step("second signed referral receipted after the kill", began)
    promoted_at = stack.promoted_at(survivor)
    after_promotion = "?" if promoted_at is None else f"{delivered.first_202_at - promoted_at:.1f} s"
    promotion = "?" if promoted_at is None else f"{promoted_at - killed_at:.1f} s"
    say(
        f"  kill to {survivor}'s promotion: {promotion}; promotion to first 202: {after_promotion}; "
        f"kill to first 202: {delivered.first_202_at - killed_at:.1f} s"
    )
    new = leader(stack, survivor)
    if new != survivor:
        raise CheckFailedError(f"after {old} was killed Patroni's leader is {new}, not {survivor}")
    say(stack.patroni_table(survivor).rstrip())
    began = time.monotonic()
    await trusts.read(receipt, "hub1")
    clock.step("second referral read on hub1 from the new primary", began)
    return old, survivor


async def after_rejoin(stack: Stack, trusts: Trusts, clock: Clock, old: str, survivor: str) -> None:
    began = time.monotonic()
    stack("start", old, timeout=120)
    await rejoined(stack, old, survivor)
    clock.step(f"{old} restarted: rewound and streaming as the synchronous standby", began)
    say(stack.patroni_table(survivor).rstrip())
    began = time.monotonic()
    receipt, _ = await trusts.refer(("hub1",), within=30)
    await trusts.read(receipt, "hub2")
    clock.step("third referral receipted with both nodes back, read on hub2", began)


async def smoke(stack: Stack, keys: DevKeys, clock: Clock) -> None:
    await wait_until_ready(stack, clock)
    say(stack.patroni_table("pg1").rstrip())
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        trusts = Trusts.connect(session, stack, keys)
        await before_failover(trusts, clock)
        old, survivor = await failover(stack, trusts, clock)
        await after_rejoin(stack, trusts, clock, old, survivor)
    restarts = {hub: stack.restart_count(hub) for hub in HUBS}
    say(f"  hub restarts: {restarts}")
    if any(restarts.values()):
        raise CheckFailedError(f"a hub restarted during the check: {restarts}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keep", action="store_true", help="leave the stack running (docker-compose -p … down -v)")
    args = parser.parse_args(argv)
    clock = Clock()
    keys = DevKeys(Path(tempfile.mkdtemp(prefix="handover-compose-check-")))
    stack: Stack | None = None
    status = 1
    try:
        docker_ready()
        began = time.monotonic()
        base = choose_base_image()
        clock.step(f"base image {base}", began)
        build_args = build_arguments(base)
        began = time.monotonic()
        keys.make()
        clock.step(f"development keys made in {keys.directory}", began)
        stack = Stack.configure(keys, build_args)
        say(f"  compose: {' '.join(stack.compose)}; hubs on {stack.url('hub1')} and {stack.url('hub2')}")
        began = time.monotonic()
        stack("build", timeout=3600)
        clock.step("images built (hub, patroni, etcd)", began)
        began = time.monotonic()
        stack("up", "-d", "--no-build", timeout=900)
        clock.step("stack up (etcd, pg1, pg2 healthy, hub1, hub2)", began)
        asyncio.run(smoke(stack, keys, clock))
        status = 0
    except (StackError, CheckFailedError) as err:
        say(f"compose-check FAILED: {err}")
        if stack is not None:
            say(stack.logs("pg1", "pg2", "hub1", "hub2"))
    finally:
        if stack is not None and not args.keep:
            began = time.monotonic()
            try:
                stack("down", "-v", "--remove-orphans", timeout=300)
                clock.step("stack stopped and its volumes removed", began)
            except StackError as err:
                say(f"could not stop the stack: {err}")
        if args.keep and stack is not None:
            say(f"  left running, with its development keys in {keys.directory}; stop it with")
            say(f"  docker-compose -p {PROJECT} down -v && rm -rf {keys.directory}")
        else:
            keys.remove()
    say(f"compose-check {'passed' if status == 0 else 'FAILED'} in {clock.now():.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
