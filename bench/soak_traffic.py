"""The soak's traffic: signed referrals made as they are sent (each with its own single-use token), a share of
hostile requests (bad signatures, oversized bodies, deep JSON, replayed tokens) that must each be refused with
its stated code, an open-loop sender that keeps a fixed rate, and the live push recipient at the centre.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from adapters.builders import SyntheticPatient, referral, synthetic_nhs_number
from bench.load_messages import KEY_WORKER, LOCAL_CLINICIAN, bearer_token
from bench.soak_sample import Timeline
from service.identity.keystore import load_private_jwk
from service.identity.registry import Registry
from service.identity.signing import sign_bundle
from service.terminology import load_code_system

HOSTILE_KINDS = ("bad-signature", "oversized", "deep-json", "replayed-token")
EXPECTED_CODE = {
    "bad-signature": "signature-invalid",
    "oversized": "payload-too-large",
    "deep-json": "invalid-json",
    "replayed-token": "unauthenticated",
}


@dataclass(frozen=True)
class Outgoing:
    kind: str  # "valid" or one of HOSTILE_KINDS
    body: bytes
    token: str
    sender: str
    identifier: str = ""

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/fhir+json",
            "X-Request-ID": str(uuid.uuid4()),
        }


class Traffic:
    """Makes the next request: valid referrals from every referrer to the centre, and with probability `hostile`
    a hostile one of a kind chosen at random. Oversized bodies are `max_body + 64 KB`."""

    def __init__(self, registry: Registry, keys_dir: Path, *, hostile: float, max_body: int, seed: int) -> None:
        self._events = load_code_system("handover-event").url
        self._centre = registry.centre()
        self._referrers = registry.referrers()
        self._keys = {trust.ods: load_private_jwk(keys_dir, trust.ods) for trust in self._referrers}
        self._hostile = hostile
        self._rng = random.Random(seed)  # noqa: S311 (mix of requests, not a secret)
        self._number = seed
        self._oversized = b'{"resourceType":"Bundle","pad":"' + b"a" * (max_body + 65536) + b'"}'
        self._deep = b'{"resourceType":"Bundle","entry":' + b"[" * 5000 + b"]" * 5000 + b"}"
        self.used_tokens: deque[tuple[str, str]] = deque(maxlen=200)  # (sender, token) of answered requests

    def next(self) -> Outgoing:
        if self._rng.random() < self._hostile:
            kind = self._rng.choice(HOSTILE_KINDS)
            if kind == "replayed-token" and not self.used_tokens:
                kind = "bad-signature"
            return self._hostile_request(kind)
        signed, trust = self._signed()
        body = json.dumps(signed, ensure_ascii=False).encode("utf-8")
        return Outgoing("valid", body, bearer_token(trust, self._keys[trust]), trust, signed["identifier"]["value"])

    def _signed(self, sender: str | None = None) -> tuple[dict[str, Any], str]:
        self._number += 1
        trust = self._referrers[self._number % len(self._referrers)]
        if sender is not None:
            trust = next(t for t in self._referrers if t.ods == sender)
        patient = SyntheticPatient(synthetic_nhs_number(self._number), "Testpatient", "Alex", "1961-04-12", "female")
        bundle = referral(
            self._events,
            sender_ods=trust.ods,
            sender_name=trust.name,
            receiver_ods=self._centre.ods,
            receiver_name=self._centre.name,
            patient=patient,
            referrer=LOCAL_CLINICIAN,
            key_worker=KEY_WORKER,
        )
        return sign_bundle(bundle, self._keys[trust.ods], trust.ods), trust.ods

    def _hostile_request(self, kind: str) -> Outgoing:
        if kind == "replayed-token":
            sender, token = self._rng.choice(list(self.used_tokens))
            signed, _ = self._signed(sender)  # the token's own trust: only the replay is wrong
            return Outgoing(kind, json.dumps(signed).encode(), token, sender)
        sender = self._referrers[self._rng.randrange(len(self._referrers))].ods
        token = bearer_token(sender, self._keys[sender])
        if kind == "oversized":
            return Outgoing(kind, self._oversized, token, sender)
        if kind == "deep-json":
            return Outgoing(kind, self._deep, token, sender)
        signed, sender = self._signed()  # bad signature: altered after signing
        signed["identifier"]["value"] += "-altered"
        return Outgoing(kind, json.dumps(signed).encode(), bearer_token(sender, self._keys[sender]), sender)


@dataclass
class Window:
    """What one sampling interval saw."""

    latencies: list[float] = field(default_factory=list)
    accepted: int = 0
    sent: int = 0
    refused_as_expected: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)  # "valid: 503", "oversized: 400", "client: ..."

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


class Sender:
    """Sends `traffic` at `rate` per second (open loop) into the current `window`, until stopped."""

    def __init__(self, base: str, traffic: Traffic, rate: float, *, timeline: Timeline) -> None:
        self._url = f"{base}/fhir/$process-message"
        self._traffic = traffic
        self._rate = rate
        self._timeline = timeline
        self.window = Window()
        self.accepted_identifiers: set[str] = set()
        self.in_flight = 0

    async def run(self, stopping: asyncio.Event) -> None:
        connector = aiohttp.TCPConnector(limit=256)
        async with aiohttp.ClientSession(connector=connector) as session:
            tasks: set[asyncio.Task[None]] = set()
            started, number = time.perf_counter(), 0
            while not stopping.is_set():
                delay = started + number / self._rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                number += 1
                task = asyncio.create_task(self._post(session, self._traffic.next()))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.gather(*tasks)

    async def _post(self, session: aiohttp.ClientSession, request: Outgoing) -> None:
        self.window.sent += 1
        if request.kind != "replayed-token":
            self._timeline.tokens.append(time.monotonic())
        self.in_flight += 1
        sent = time.perf_counter()
        try:
            async with session.post(self._url, data=request.body, headers=request.headers()) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, OSError) as exc:
            self.window.error(f"{request.kind}: client {type(exc).__name__}")
            return
        finally:
            self.in_flight -= 1
        window = self.window  # the interval in which the answer came
        if request.kind == "valid":
            if status == 202:
                window.accepted += 1
                window.latencies.append(time.perf_counter() - sent)
                self._timeline.accepted.append(time.monotonic())
                self.accepted_identifiers.add(request.identifier)
                self._traffic.used_tokens.append((request.sender, request.token))
            else:
                window.error(f"valid: {status}")
            return
        code = _error_code(raw)
        if 400 <= status < 500 and code == EXPECTED_CODE[request.kind]:
            window.refused_as_expected[request.kind] = window.refused_as_expected.get(request.kind, 0) + 1
        else:
            window.error(f"{request.kind}: {status} {code}")


def _error_code(raw: bytes) -> str:
    try:
        outcome = json.loads(raw)
        return str(outcome["issue"][0]["details"]["coding"][0]["code"])
    except (ValueError, KeyError, IndexError, TypeError):
        return "not an OperationOutcome"
