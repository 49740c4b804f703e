"""The checkpoint signer survives a fault it did not foresee (issue 26 item 8): before, only store and key
outages were caught, so one unexpected exception ended checkpoint signing silently until restart."""

from __future__ import annotations

import asyncio

from service.auditlog.checkpoints import CheckpointSigner, NoteSigner
from service.auditlog.tree import AuditTree
from service.background import FAULTS
from service.store import checkpoints as checkpoint_store
from service.store import db
from tests.auditlog.audit_fixtures import note_signer, pool_for
from tests.delivery.delivery_fixtures import eventually
from tests.support.hub import Network


async def test_an_unexpected_fault_costs_one_pass_and_the_signer_signs_on(database: str, network: Network) -> None:
    faults: list[str] = []

    def signer_failing_once() -> NoteSigner:
        if not faults:
            faults.append("raised")
            raise ValueError("an unforeseen fault in the key's loading")
        return note_signer(network)

    before = FAULTS.counts.get("audit-checkpoint-signer", 0)
    async with pool_for(database) as pool:
        signer = CheckpointSigner(pool, AuditTree(), signer_failing_once, interval_seconds=0.01)
        task = asyncio.create_task(signer.run())

        async def signed() -> bool:
            async with db.connection(pool) as conn:
                return await checkpoint_store.latest_checkpoint(conn) is not None

        try:
            await eventually(signed, within=10, what="a checkpoint signed after the fault")
        finally:
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled(), "cancellation still stops it"
    assert faults == ["raised"]
    assert FAULTS.counts["audit-checkpoint-signer"] == before + 1
