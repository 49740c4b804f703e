"""What every request handler may reach: one `Services` object stored on the aiohttp Application."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from aiohttp import web

from service.clock import Clock, utc_now
from service.config import Settings
from service.delivery.mailbox import Mailboxes
from service.identity.authentication import StaffAuthenticator, TrustAuthenticator
from service.identity.registry import RegistryHolder
from service.intake import Intake
from service.metrics import Metrics
from service.pseudonyms import Pseudonymiser


@dataclass
class Services:
    settings: Settings
    pool: asyncpg.Pool
    registry: RegistryHolder
    intake: Intake
    mailboxes: Mailboxes
    metrics: Metrics
    authenticator: TrustAuthenticator
    staff: StaffAuthenticator
    pseudonyms: Pseudonymiser
    clock: Clock = utc_now


SERVICES = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]
