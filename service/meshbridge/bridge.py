"""`handover mesh-bridge`: the hub's MESH mailbox, both ways, as one long-running process.

Every `poll_seconds` it reads the inbox into the intake (inbound.py) and delivers what is due to MESH-only
participants (service/delivery/mesh.py). MESH or the database being unreachable only delays work: nothing is
acknowledged or marked before it is durable, and the next pass resumes where this one stopped. Any number of
bridges may share one database (leases), though one per MESH mailbox is the norm.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from service.background import FAULTS, run_forever
from service.clock import Clock, utc_now
from service.config import Settings
from service.delivery.mesh import MeshDelivery, mesh_recipients
from service.delivery.nondelivery import DeadLetters
from service.delivery.relay_settings import RelaySettings
from service.errors import HandoverError
from service.hub import Hub, open_hub
from service.mesh.mailbox import MeshMailbox, MeshUnavailableError
from service.mesh.settings import MeshSettings
from service.meshbridge.inbound import MeshInbound

log = logging.getLogger("handover.mesh")


@dataclass
class MeshBridge:
    """The inbound reader and the outbound channel over one MESH mailbox."""

    inbound: MeshInbound
    outbound: MeshDelivery
    mailbox: MeshMailbox
    poll_seconds: float

    async def run_once(self) -> None:
        """One pass: read the inbox, then deliver what is due, each on its own (one failing does not hold up
        the other). MESH or the store being unavailable is logged; the next pass tries again."""
        for step in (self.inbound.poll_once, self.outbound.run_once):
            try:
                await step()
            except MeshUnavailableError as err:
                FAULTS.count("mesh-bridge")
                log.warning("MESH unreachable: will try again", extra={"code": str(err)})
            except HandoverError as err:
                FAULTS.count("mesh-bridge")
                log.warning("store or keys unavailable: will try again", extra={"code": err.code.value})
            except Exception:  # the bridge's loop: log the fault's type and place, keep going
                FAULTS.count("mesh-bridge")
                log.exception("MESH bridge fault")

    async def run(self, stop: asyncio.Event) -> None:
        """Pass after pass, every `poll_seconds`, until `stop` (service/background.py runs it)."""
        await run_forever("mesh-bridge", self.run_once, interval=self.poll_seconds, until=stop)


@asynccontextmanager
async def open_bridge(
    settings: Settings, mesh: MeshSettings, dsn: str, *, clock: Clock = utc_now
) -> AsyncIterator[MeshBridge]:
    """The bridge on the hub's parts (service/hub.py: one pool, the vault, the intake, the hub's own-message
    sender) and its MESH client; closed on exit."""
    async with open_hub(settings, dsn, clock=clock, pool_max=settings.background_pool_max) as hub:
        mailbox = MeshMailbox(mesh)
        try:
            yield bridge_on(hub, mesh, mailbox)
        finally:
            mailbox.close()


def bridge_on(hub: Hub, mesh: MeshSettings, mailbox: MeshMailbox) -> MeshBridge:
    """The inbound reader and the MESH delivery channel over `mailbox`, from the hub's parts."""
    relay_settings = RelaySettings(window=hub.delivery_window)
    dead_letters = DeadLetters(hub.pool, hub.mail, window=relay_settings.window, clock=hub.clock)
    outbound = MeshDelivery(
        hub.pool,
        hub.vault,
        mailbox,
        dead_letters,
        recipients=lambda: mesh_recipients(hub.registry.current),
        settings=relay_settings,
        track_every=timedelta(seconds=mesh.track_seconds),
        clock=hub.clock,
    )
    inbound = MeshInbound(
        hub.intake,
        mailbox,
        lambda: hub.registry.current,
        on_report=outbound.on_report,
        max_body_bytes=hub.settings.max_body_bytes,
    )
    return MeshBridge(inbound, outbound, mailbox, mesh.poll_seconds)
