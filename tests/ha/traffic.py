"""Signed referrals from careful trust clients, spread over several hubs, for the HA tests and the failover bench.

A careful client sends each message until it is receipted: on a 503 (or no answer) it tries again, on the next
hub, with the same X-Request-ID, after a short pause (Retry-After, capped so a test does not idle). Every answer
is kept with its time, so a run can tell how many 503s a failover cost and when the first 202 came after it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from adapters.trust_client import TrustClient
from service.signing import sign_bundle
from tests.support.hub import Network
from tests.support.messages import referral

SENDERS = ("RM1", "RDE", "RGN", "RC9", "RGP", "RCX", "RGR")
STATUSES_A_CAREFUL_CLIENT_RETRIES = {0, 503}


@dataclass
class Outgoing:
    sender: str
    identifier: str
    request_id: str
    body: bytes
    status: int = 0
    receipt: dict[str, Any] | None = None


@dataclass(frozen=True)
class Answer:
    at: float
    status: int
    hub: str
    seconds: float  # how long the answer took


@dataclass
class Traffic:
    """Sends `Outgoing` messages over `hubs` (base URLs) with `clients` concurrent careful clients."""

    network: Network
    hubs: list[str]
    clients: int = 16
    max_pause: float = 0.25
    request_timeout: float = 30.0
    answers: list[Answer] = field(default_factory=list)

    def messages(self, count: int) -> list[Outgoing]:
        made = []
        for number in range(count):
            sender = SENDERS[number % len(SENDERS)]
            bundle = sign_bundle(referral(sender), self.network.private_key(sender), sender)
            made.append(Outgoing(sender, bundle["identifier"]["value"], str(uuid.uuid4()), json.dumps(bundle).encode()))
        return made

    @property
    def receipted(self) -> int:
        return sum(1 for a in self.answers if a.status == 202)

    async def send_all(
        self, messages: list[Outgoing], *, give_up_after: float = 240.0, until: asyncio.Event | None = None
    ) -> list[Outgoing]:
        """Send each message until receipted; with `until`, take no new message once it is set. Returns those
        taken (all of them without `until`)."""
        queue = list(reversed(messages))
        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        give_up = time.monotonic() + give_up_after
        async with aiohttp.ClientSession(timeout=timeout) as session:

            async def client(number: int) -> None:
                while queue and not (until is not None and until.is_set()):
                    await self._until_receipted(session, queue.pop(), number, give_up)

            await asyncio.gather(*(client(n) for n in range(self.clients)))
        return messages[: len(messages) - len(queue)]

    async def _until_receipted(
        self, session: aiohttp.ClientSession, message: Outgoing, start: int, give_up: float
    ) -> None:
        attempt = 0
        while time.monotonic() < give_up:
            hub = self.hubs[(start + attempt) % len(self.hubs)]
            attempt += 1
            pause = self.max_pause
            client = TrustClient(
                session, hub, message.sender, self.network.private_key(message.sender), self.network.registry
            )
            headers = {
                "Authorization": f"Bearer {client.bearer_token()}",
                "Content-Type": "application/fhir+json",
                "X-Request-ID": message.request_id,
            }
            sent = time.monotonic()
            try:
                async with session.post(f"{hub}/fhir/$process-message", data=message.body, headers=headers) as resp:
                    raw = await resp.read()
                    message.status = resp.status
                    if resp.status == 202:
                        message.receipt = json.loads(raw)
                    pause = min(self.max_pause, float(resp.headers.get("Retry-After", self.max_pause)))
            except (aiohttp.ClientError, TimeoutError):
                message.status = 0
            now = time.monotonic()
            self.answers.append(Answer(now, message.status, hub, now - sent))
            if message.status not in STATUSES_A_CAREFUL_CLIENT_RETRIES:
                return  # receipted, or refused for a reason a retry would not change (the test says which)
            await asyncio.sleep(pause)

    def first_202_after(self, moment: float) -> float | None:
        found = [a.at for a in self.answers if a.status == 202 and a.at >= moment]
        return min(found) if found else None

    def count(self, status: int, *, after: float = 0.0, before: float = float("inf")) -> int:
        return sum(1 for a in self.answers if a.status == status and after <= a.at <= before)


async def wait_until(predicate: Any, what: str, within: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting: {what}"
        await asyncio.sleep(0.05)


class PrimaryWatch:
    """Polls GET /primary on every node (every 50 ms, in a thread) and records when each became the primary."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self.became_primary: list[tuple[float, str]] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PrimaryWatch:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        current = None
        while not self._stop.is_set():
            primary = await asyncio.to_thread(self.cluster.primary)
            name = primary.name if primary is not None else None
            if name is not None and name != current:
                self.became_primary.append((time.monotonic(), name))
            current = name if name is not None else current
            await asyncio.sleep(0.05)

    async def wait_promoted(self, moment: float, name: str, within: float = 60) -> float:
        """When `name` became the primary after `moment` (waiting for the poll to see it, if need be)."""
        await wait_until(lambda: self.promoted_after(moment, name) is not None, f"{name} promoted", within)
        promoted = self.promoted_after(moment, name)
        assert promoted is not None
        return promoted

    def promoted_after(self, moment: float, name: str | None = None) -> float | None:
        found = [at for at, who in self.became_primary if at >= moment and (name is None or who == name)]
        return min(found) if found else None
