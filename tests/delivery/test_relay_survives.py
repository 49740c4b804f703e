"""The relay's supervisor (registry, keys, the dead-letter sweep) survives an unforeseen fault of a pass, and the
fault is counted on /metrics as `handover_background_errors_total{duty="relay-supervisor"}` (issue 26 item 8)."""

from __future__ import annotations

from pathlib import Path

from service.background import FAULTS
from tests.delivery.delivery_fixtures import eventually, outbox_world, recipients
from tests.support.hub import Network


async def test_a_fault_in_a_supervisor_pass_is_counted_and_delivery_goes_on(
    database: str, network: Network, tmp_path: Path
) -> None:
    async with outbox_world(database, network, tmp_path) as world, recipients(network, "RGT") as (rgt,):
        sent = await world.accept()
        relay = world.relay({"RGT": rgt.endpoint})
        real_check = relay._check_keys
        faults: list[str] = []

        async def check_failing_once() -> None:
            if not faults:
                faults.append("raised")
                raise KeyError("an unforeseen fault")
            await real_check()

        relay._check_keys = check_failing_once  # type: ignore[method-assign]
        before = FAULTS.counts.get("relay-supervisor", 0)
        await relay.start()
        try:

            async def delivered() -> bool:
                return (await world.states())[sent.message_id] == "delivered"

            await eventually(delivered, within=10, what="the message delivered after the fault")
        finally:
            await relay.stop()
        assert faults == ["raised"]
        assert FAULTS.counts["relay-supervisor"] == before + 1
