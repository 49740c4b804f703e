"""Shared pieces for the delivery tests: a controllable clock, an outbox "world" (pool, vault, KEK file, relays,
messages accepted straight into the store as the acceptance transaction writes them) and the invariants.

INV1: every accepted message ends `delivered`, or `dead_letter` with exactly one non-delivery report in its
sender's mailbox. INV2: a recipient's business layer sees each Bundle.identifier at most once (exactly once for
what was pushed to it).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg

from adapters.recipient import Recipient
from service.auditlog import appending
from service.auditlog.events import AuditEvent, EventType
from service.crypto.envelope import PayloadIdentity
from service.crypto.kek import create_kek_file
from service.crypto.vault import PayloadVault, open_vault
from service.delivery.hubmail import HubMail
from service.delivery.relay import Relay
from service.delivery.relay_settings import RelaySettings
from service.identity.signing import payload_sha256, sign_bundle
from service.store import db, messages
from service.terminology import load_code_system
from tests.support.hub import Network
from tests.support.messages import referral

EVENT_SYSTEM = load_code_system("handover-event").url
FAST = RelaySettings(
    timeout_seconds=0.5,
    concurrency=4,
    lease=timedelta(minutes=2),
    poll_seconds=0.02,
    sweep_seconds=0.05,
    shutdown_grace_seconds=2.0,
    failure_threshold=5,
    circuit_cooldown=timedelta(seconds=5),
)


class ManualClock:
    """A clock that moves only when told to (all relay timing is in this clock's time)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


@dataclass(frozen=True)
class Sent:
    """A message accepted into the store by `World.accept`."""

    message_id: UUID
    sender: str
    recipient: str
    bundle_identifier: str
    body: bytes


@dataclass
class World:
    dsn: str
    pool: asyncpg.Pool
    vault: PayloadVault
    kek_file: Path
    clock: ManualClock
    network: Network
    relays: list[Relay] = field(default_factory=list)

    def relay(self, endpoints: Mapping[str, str], settings: RelaySettings = FAST, *, seed: int = 1) -> Relay:
        relay = Relay(
            self.pool,
            HubMail(self.vault, self.network.private_key("hub"), EVENT_SYSTEM),
            endpoints=lambda: endpoints,
            settings=settings,
            clock=self.clock,
            rng=random.Random(seed),
        )
        self.relays.append(relay)
        return relay

    async def accept(self, sender: str = "RM1", recipient: str = "RGT") -> Sent:
        """Sign a synthetic referral as `sender` and commit it as the acceptance transaction does."""
        signed = sign_bundle(referral(sender, recipient), self.network.private_key(sender), sender)
        body = json.dumps(signed, ensure_ascii=False).encode()
        message_id, now = uuid.uuid4(), self.clock()
        sealed = await self.vault.seal(body, PayloadIdentity(message_id, sender, recipient))
        identifier = signed["identifier"]["value"]
        async with db.transaction(self.pool) as conn:
            assert await messages.insert_message(
                conn,
                messages.NewMessage(
                    id=message_id,
                    sender_ods=sender,
                    recipient_ods=recipient,
                    event="referral",
                    bundle_identifier=identifier,
                    message_header_id=signed["entry"][0]["resource"]["id"],
                    payload_sha256=payload_sha256(signed),
                    sealed=sealed,
                    request_id=uuid.uuid4(),
                    correlation_id=None,
                    accepted_at=now,
                ),
            )
            await appending.append_event(
                conn,
                AuditEvent(EventType.MESSAGE_ACCEPTED, "accepted", sender, now, message_id, {"recipient": recipient}),
            )
        return Sent(message_id, sender, recipient, identifier, body)

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with db.connection(self.pool) as conn:
            return list(await conn.fetch(sql, *args))

    async def delivery(self, message_id: UUID) -> asyncpg.Record:
        rows = await self.fetch("SELECT * FROM deliveries WHERE message_id = $1", message_id)
        assert len(rows) == 1
        return rows[0]

    async def states(self) -> dict[UUID, str]:
        rows = await self.fetch("SELECT message_id, state FROM deliveries")
        return {r["message_id"]: r["state"] for r in rows}

    async def reports(self) -> list[asyncpg.Record]:
        """Non-delivery reports with their dead letter's message and the report message."""
        return await self.fetch(
            """
            SELECT r.*, d.message_id AS dead_message_id, m.sender_ods AS original_sender,
                   rm.recipient_ods AS report_recipient, rm.sender_ods AS report_sender, rm.event AS report_event
            FROM non_delivery_reports r
            JOIN deliveries d ON d.id = r.delivery_id
            JOIN messages m ON m.id = d.message_id
            JOIN messages rm ON rm.id = r.report_message_id
            """
        )

    async def check_inv1(self, *, settled: bool = True) -> None:
        """Every trust-sent message is delivered, or dead-lettered with exactly one report to its sender (with
        `settled` False, pending is allowed too: the check is then that nothing is lost or doubled)."""
        rows = await self.fetch(
            """
            SELECT d.id, d.state, m.sender_ods, count(r.delivery_id) AS reports,
                   count(*) FILTER (WHERE rm.recipient_ods = m.sender_ods AND rm.sender_ods = 'hub') AS to_sender,
                   bool_or(q.delivery_id IS NOT NULL) AS requeued
            FROM deliveries d JOIN messages m ON m.id = d.message_id
            LEFT JOIN non_delivery_reports r ON r.delivery_id = d.id
            LEFT JOIN messages rm ON rm.id = r.report_message_id
            LEFT JOIN redeliveries q ON q.delivery_id = d.id
            WHERE m.sender_ods <> 'hub'
            GROUP BY d.id, d.state, m.sender_ods
            """
        )
        for row in rows:
            allowed = {"delivered", "dead_letter"} | (set() if settled else {"pending"})
            assert row["state"] in allowed, f"INV1: delivery {row['id']} is {row['state']}"
            # A dead letter delivered again by staff (redelivery.py) keeps the one report of its first death.
            expected = 1 if row["state"] == "dead_letter" or row["requeued"] else 0
            assert row["reports"] == row["to_sender"] == expected, f"INV1: delivery {row['id']} reports"

    async def check_inv2(self, recipient: Recipient, *, exactly: set[str] | None = None) -> None:
        """The recipient's business layer saw no identifier twice (and, given `exactly`, saw precisely those)."""
        assert recipient.duplicates() == [], "INV2: a Bundle.identifier reached the business layer twice"
        assert recipient.problems == [], recipient.problems
        if exactly is not None:
            assert set(recipient.business) == exactly, "INV2: not every pushed message was seen exactly once"

    async def pushed_identifiers(self, recipient_ods: str) -> set[str]:
        rows = await self.fetch(
            """
            SELECT m.bundle_identifier FROM deliveries d JOIN messages m ON m.id = d.message_id
            WHERE d.recipient_ods = $1 AND d.state = 'delivered' AND d.channel = 'push'
            """,
            recipient_ods,
        )
        return {r["bundle_identifier"] for r in rows}


@asynccontextmanager
async def outbox_world(dsn: str, network: Network, tmp_path: Path) -> AsyncIterator[World]:
    """A pool on the test's database, a fresh file KEK and a manual clock; relays made by `World.relay` are
    stopped at the end."""
    kek_file = tmp_path / "kek.key"
    create_kek_file(kek_file)
    pool = await db.create_pool(dsn, max_size=10)
    world = World(
        dsn, pool, await open_vault(pool, kek_file, create_if_missing=False), kek_file, ManualClock(), network
    )
    try:
        yield world
    finally:
        await asyncio.gather(*(relay.stop() for relay in world.relays))
        await pool.close()


@asynccontextmanager
async def recipients(network: Network, *odses: str) -> AsyncIterator[list[Recipient]]:
    started = [await Recipient(ods, network.registry).start() for ods in odses]
    try:
        yield started
    finally:
        for recipient in started:
            await recipient.stop()


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 5.0, what: str = "condition") -> None:
    """Poll `check` until it is true; fail after `within` seconds (real time)."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def with_settings(**changes: Any) -> RelaySettings:
    return replace(FAST, **changes)
