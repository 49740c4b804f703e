"""The outbox as a model: hypothesis drives accept / deliver / crash / restart / recipient faults / pull
acknowledgements / clock jumps in any order, and INV1 and INV2 are checked after every step; at the end everything is
healed and drained, and INV1 and INV2 must hold in their final form (every message delivered once, or dead-lettered
with exactly one report)."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from adapters.recipient import Recipient
from service.crypto.kek import create_kek_file
from service.crypto.vault import PayloadVault, open_vault
from service.delivery.mailbox import Mailboxes
from service.delivery.relay import Relay
from service.store import db
from tests.delivery.delivery_fixtures import ManualClock, World, with_settings
from tests.support.databases import DatabaseFactory
from tests.support.hub import Network

MODEL_SETTINGS = with_settings(timeout_seconds=0.1, failure_threshold=3, circuit_cooldown=timedelta(seconds=30))


class OutboxModel(RuleBasedStateMachine):
    """One example: a fresh database, a push recipient (RGT) and a pull-only one (RDE)."""

    loop: asyncio.AbstractEventLoop
    databases: DatabaseFactory
    network: Network
    kek_file: Path

    def __init__(self) -> None:
        super().__init__()
        self.run = self.loop.run_until_complete
        self.dsn = self.run(self.databases.create())
        self.pool: asyncpg.Pool = self.run(db.create_pool(self.dsn, max_size=6))
        vault: PayloadVault = self.run(open_vault(self.pool, self.kek_file, create_if_missing=False))
        self.world = World(self.dsn, self.pool, vault, self.kek_file, ManualClock(), self.network)
        self.rgt = self.run(Recipient("RGT", self.network.registry).start())
        self.seeds = 0
        self.relay: Relay | None = self.new_relay()
        self.mailboxes = Mailboxes(self.pool, vault)

    def new_relay(self) -> Relay:
        self.seeds += 1
        return self.world.relay({"RGT": self.rgt.endpoint}, MODEL_SETTINGS, seed=self.seeds)

    async def stop_relays(self) -> None:
        for relay in self.world.relays:
            await relay.stop()

    def teardown(self) -> None:
        try:
            self.drain_and_check()
        finally:
            self.run(self.stop_relays())
            self.run(self.rgt.stop())
            self.run(self.pool.close())
            self.run(self.databases.drop(self.dsn))

    # ------------------------------------------------------------------------------------------------ rules

    @initialize(count=st.integers(1, 4))
    def start(self, count: int) -> None:
        for _ in range(count):
            self.run(self.world.accept("RM1", "RGT"))
        self.run(self.world.accept("RGT", "RDE"))

    @rule(to=st.sampled_from(["RGT", "RGT", "RDE"]), sender=st.sampled_from(["RM1", "RDE", "RGN"]))
    def accept(self, to: str, sender: str) -> None:
        if sender == to:
            sender = "RM1"
        self.run(self.world.accept(sender, to))

    @precondition(lambda self: self.relay is not None)
    @rule()
    def deliver(self) -> None:
        assert self.relay is not None
        self.run(self.relay.run_once())

    @precondition(lambda self: self.relay is not None)
    @rule()
    def crash_after_pushing(self) -> None:
        """The relay pushes what it leased and dies before recording anything (no release either)."""
        relay = self.relay
        assert relay is not None

        async def push_and_die() -> None:
            queue = relay.queue("RGT")
            assert queue is not None
            for job in await queue.lease(queue.allowance()):
                await queue.attempt(job)

        self.run(push_and_die())
        self.relay = None

    @precondition(lambda self: self.relay is None)
    @rule()
    def restart(self) -> None:
        self.relay = self.new_relay()

    @rule(behaviour=st.sampled_from(["ok", "ok", "503", "429", "422", "late"]))
    def recipient_behaves(self, behaviour: str) -> None:
        self.rgt.accept_all()
        self.rgt.delay_after_processing = 0.0
        if behaviour in ("503", "429", "422"):
            self.rgt.refuse_with(int(behaviour), retry_after="30" if behaviour == "429" else None)
        elif behaviour == "late":
            self.rgt.delay_after_processing = 0.15  # processed, but the answer misses the relay's timeout

    @rule(ods=st.sampled_from(["RGT", "RDE"]), pick=st.integers(0, 5))
    def acknowledge_by_pull(self, ods: str, pick: int) -> None:
        pending = self.run(self.mailboxes.pending(ods))
        if pending:
            self.run(self.mailboxes.acknowledge(ods, pending[pick % len(pending)].message_id))

    @rule(
        jump=st.sampled_from(
            [timedelta(seconds=5), timedelta(minutes=3), timedelta(minutes=20), timedelta(days=2), timedelta(days=3)]
        )
    )
    def advance_clock(self, jump: timedelta) -> None:
        self.world.clock.advance(jump)

    # ------------------------------------------------------------------------------------------- invariants

    @invariant()
    def inv2_business_layer_sees_each_message_at_most_once(self) -> None:
        assert self.rgt.duplicates() == [] and self.rgt.problems == []

    @invariant()
    def inv1_nothing_lost_or_doubled(self) -> None:
        self.run(self.world.check_inv1(settled=False))
        pushed = self.run(self.world.pushed_identifiers("RGT"))
        assert pushed <= set(self.rgt.business), "delivered by push means the business layer has it"

    def drain_and_check(self) -> None:
        self.rgt.accept_all()
        self.rgt.delay_after_processing = 0.0
        self.relay = self.relay or self.new_relay()
        for _ in range(4):  # past every lease, backoff and open circuit; then beyond the delivery window
            self.world.clock.advance(timedelta(minutes=20))
            self.run(self.relay.run_once())
            self.run(self.relay.run_once())
        rgt = self.run(self.world.fetch("SELECT state FROM deliveries WHERE recipient_ods = 'RGT'"))
        assert {r["state"] for r in rgt} <= {"delivered", "dead_letter"}, "a healthy push recipient gets everything"
        self.world.clock.advance(timedelta(days=6))  # pull-only messages never acknowledged expire with a report
        self.run(self.relay.run_once())
        self.run(self.world.check_inv1(settled=True))
        self.run(self.world.check_inv2(self.rgt))
        assert self.run(self.world.pushed_identifiers("RGT")) <= set(self.rgt.business)


def test_outbox_model_keeps_inv1_and_inv2_through_crashes_faults_and_time(
    databases: DatabaseFactory, network: Network
) -> None:
    loop = asyncio.new_event_loop()
    try:
        with tempfile.TemporaryDirectory() as directory:
            kek_file = Path(directory) / "kek.key"
            create_kek_file(kek_file)
            attributes: dict[str, Any] = {
                "loop": loop,
                "databases": databases,
                "network": network,
                "kek_file": kek_file,
            }
            machine = type("Model", (OutboxModel,), attributes)
            run = settings(
                max_examples=20,
                stateful_step_count=15,
                deadline=None,
                phases=[Phase.explicit, Phase.reuse, Phase.generate],  # shrinking re-runs real I/O: too slow
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                derandomize=True,
            )(machine).TestCase
            run().runTest()
    finally:
        loop.close()
