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
from service.crypto.vault import open_vault
from service.delivery.mesh import MeshDelivery, mesh_recipients
from service.delivery.nondelivery import DeadLetters
from service.delivery.relay_settings import RelaySettings
from service.episodes.tracker import Deadlines, EpisodeTracker
from service.errors import HandoverError
from service.identity.hubkey import HubSigningKey
from service.intake import Freshness, Intake
from service.mesh.inbound import MeshInbound
from service.mesh.mailbox import MeshMailbox, MeshUnavailableError
from service.mesh.settings import MeshSettings
from service.pseudonyms import Pseudonymiser
from service.registry import RegistryHolder
from service.store import db
from service.terminology import load_code_system
from service.validation import load_validator

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
    """The bridge with its database pool, vault and MESH client; closed on exit."""
    await db.migrate(dsn)
    registry = RegistryHolder.from_file(settings.network_path)
    hub_key = HubSigningKey(settings.keys_dir, registry)  # follows the registry's active hub key
    pool = await db.create_pool(dsn, max_size=settings.background_pool_max)
    mailbox = MeshMailbox(mesh)
    try:
        vault = await open_vault(pool, settings.kek_path, create_if_missing=settings.kek_file is None)
        events = load_code_system("handover-event")
        relay_settings = RelaySettings(window=timedelta(seconds=settings.delivery_window_seconds))
        dead_letters = DeadLetters(pool, vault, hub_key, events.url, window=relay_settings.window, clock=clock)
        outbound = MeshDelivery(
            pool,
            vault,
            mailbox,
            dead_letters,
            recipients=lambda: mesh_recipients(registry.current),
            settings=relay_settings,
            track_every=timedelta(seconds=mesh.track_seconds),
            clock=clock,
        )
        intake = Intake(
            pool,
            registry,
            hub_key,
            events,
            vault=vault,
            freshness=Freshness.from_settings(settings),
            episodes=EpisodeTracker(Pseudonymiser.from_keys_dir(settings.keys_dir), Deadlines.from_settings(settings)),
            validator=load_validator(),
            clock=clock,
        )
        inbound = MeshInbound(
            intake,
            mailbox,
            lambda: registry.current,
            on_report=outbound.on_report,
            max_body_bytes=settings.max_body_bytes,
        )
        yield MeshBridge(inbound, outbound, mailbox, mesh.poll_seconds)
    finally:
        mailbox.close()
        await pool.close()
