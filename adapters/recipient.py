"""The one fake receiving system (a trust's EPR) the hub pushes to: an aiohttp server at
``{endpoint}/$process-message`` that checks what the hub sends and records what its business layer saw. The push
delivery tests, the demo's EPR (`prefix=""`) and the benchmarks (`strict=False`) all use it.

Each request's hub bearer token is verified (ES256 with the hub's registered key; ``iss`` = ``sub`` = ``hub``,
``aud`` = this trust's ODS code) and so is the message's own signature (the sender's registered key): the hub must
push the original signed bytes. The business layer takes each message once: a repeat of an ``X-Request-ID`` or of
a ``Bundle.identifier`` is answered 409 and not processed again. `business` lists what was processed, in order
(INV2: no identifier twice).

Behaviour is scripted per test: `refuse_with` answers a status before any processing (optionally with
Retry-After); `delay_after_processing` or `hold_after_processing` process the message and only then answer (a
response that is late or never comes: the hub cannot know it was processed). With `strict=False` it checks
nothing and answers 200 to every push (a benchmark's recipient, whose checks would cost the measured machine CPU);
`arrivals` counts every push by Bundle.identifier and `arrived_at` keeps the time of its last arrival either way.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from joserfc import jwk, jws

from service.identity.registry import Registry
from service.identity.signing import verify_bundle_signature

MAX_BODY_BYTES = 16 * 1024 * 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Received:
    """One request as it arrived, and what was answered."""

    at: float
    request_id: str
    message_id: str
    sender: str
    bundle_identifier: str | None
    status: int


@dataclass
class Refusal:
    status: int
    retry_after: str | None = None
    times: int | None = None  # None: until changed


@dataclass
class Recipient:
    """The receiving system of trust `ods`, checking against `registry` (unless not `strict`)."""

    ods: str = ""
    registry: Registry | None = None
    port: int = field(default_factory=free_port)
    prefix: str = "/fhir"
    strict: bool = True
    received: list[dict[str, Any]] = field(default_factory=list)  # the Bundles processed, in order
    arrivals: dict[str, int] = field(default_factory=dict)  # Bundle.identifier → pushes that reached the recipient
    arrived_at: dict[str, float] = field(default_factory=dict)  # Bundle.identifier → time.time() of the last
    requests: list[Received] = field(default_factory=list)
    business: list[str] = field(default_factory=list)
    bodies: dict[str, str] = field(default_factory=dict)  # Bundle.identifier → SHA-256 of the bytes processed
    problems: list[str] = field(default_factory=list)
    refusal: Refusal | None = None
    delay_after_processing: float = 0.0
    hold_after_processing: asyncio.Event | None = None
    processed: asyncio.Event = field(default_factory=asyncio.Event)
    _request_ids: set[str] = field(default_factory=set)
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    async def start(self, port: int | None = None) -> Recipient:
        if port is not None:
            self.port = port
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post(f"{self.prefix}/$process-message", self._process_message)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self.hold_after_processing is not None:
            self.hold_after_processing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> Recipient:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def refuse_with(self, status: int, *, retry_after: str | None = None, times: int | None = None) -> None:
        self.refusal = Refusal(status, retry_after, times)

    def accept_all(self) -> None:
        self.refusal = None

    async def wait_for(self, count: int, *, within_seconds: float) -> bool:
        """Whether `count` messages have been processed within `within_seconds`."""
        async with self._arrived:
            try:
                await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.received) >= count), within_seconds)
            except TimeoutError:
                return False
        return True

    def duplicates(self) -> list[str]:
        return sorted({i for i in self.business if self.business.count(i) > 1})

    async def _process_message(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not self.strict:
            return await self._count(body)
        request_id = request.headers.get("X-Request-ID", "")
        message_id = request.headers.get("X-Handover-Message-ID", "")
        sender = request.headers.get("X-Handover-Sender", "")
        identifier: str | None = None
        status = self._check_token(request.headers.get("Authorization", ""))
        if status == 200:
            identifier, status = self._check_message(body, sender)
        if status == 200 and self.refusal is not None:
            status = self.refusal.status
        if status == 200 and (request_id in self._request_ids or identifier in self.business):
            status = 409
        headers: dict[str, str] = {}
        if status != 200 and self.refusal is not None and status == self.refusal.status:
            if self.refusal.retry_after is not None:
                headers["Retry-After"] = self.refusal.retry_after
            if self.refusal.times is not None:
                self.refusal.times -= 1
                if self.refusal.times <= 0:
                    self.refusal = None
        self.requests.append(Received(time.monotonic(), request_id, message_id, sender, identifier, status))
        if status == 200:
            assert identifier is not None
            self._request_ids.add(request_id)
            self.business.append(identifier)
            self.bodies[identifier] = hashlib.sha256(body).hexdigest()
            await self._arrival(identifier, json.loads(body))
            if self.delay_after_processing:
                await asyncio.sleep(self.delay_after_processing)
            if self.hold_after_processing is not None:
                await self.hold_after_processing.wait()
        return web.json_response(_outcome(status), status=status, headers=headers, content_type="application/fhir+json")

    async def _count(self, body: bytes) -> web.Response:
        bundle = json.loads(body)
        await self._arrival(bundle["identifier"]["value"], bundle)
        return web.json_response({"resourceType": "OperationOutcome", "issue": []})

    async def _arrival(self, identifier: str, bundle: dict[str, Any]) -> None:
        self.arrivals[identifier] = self.arrivals.get(identifier, 0) + 1
        self.arrived_at[identifier] = time.time()
        async with self._arrived:
            self.received.append(bundle)
            self._arrived.notify_all()
        self.processed.set()

    def _check_token(self, authorization: str) -> int:
        scheme, _, token = authorization.partition(" ")
        assert self.registry is not None, "a strict recipient checks against the registry"
        hub_key = self.registry.active_hub_key()
        try:
            members = {k: hub_key.public_jwk[k] for k in ("kty", "crv", "x", "y")}
            claims: dict[str, Any] = json.loads(jws.deserialize_compact(token, jwk.import_key(members)).payload)
        except (ValueError, KeyError) as err:
            self.problems.append(f"bad token: {type(err).__name__}")
            return 401
        now = time.time()
        if scheme != "Bearer" or claims.get("iss") != "hub" or claims.get("sub") != "hub":
            self.problems.append("token not issued by the hub")
            return 401
        if claims.get("aud") != self.ods or not claims["iat"] - 300 <= now < claims["exp"] <= claims["iat"] + 300:
            self.problems.append("token audience or lifetime wrong")
            return 401
        return 200

    def _check_message(self, body: bytes, sender: str) -> tuple[str | None, int]:
        try:
            bundle = json.loads(body)
            signature = verify_bundle_signature(bundle, self._key_lookup)
        except Exception as err:  # noqa: BLE001 (record any failure to read or verify as a problem)
            self.problems.append(f"message not verifiable: {type(err).__name__}")
            return None, 422
        if signature.owner_ods != sender:
            self.problems.append("X-Handover-Sender is not the message's signer")
            return None, 422
        identifier: str = bundle["identifier"]["value"]
        return identifier, 200

    def _key_lookup(self, kid: str) -> Any:
        assert self.registry is not None
        return self.registry.key(kid) or self.registry.hub_key(kid)


def _outcome(status: int) -> dict[str, Any]:
    if status == 200:
        return {"resourceType": "OperationOutcome", "issue": [{"severity": "information", "code": "informational"}]}
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing"}]}
