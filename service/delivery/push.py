"""One push attempt: POST a message's original signed bytes to ``{endpoint}/$process-message`` with the hub's
headers, and what the answer means for the delivery.

Headers: ``X-Request-ID`` (stable per delivery, so a recipient can recognise a redelivery), ``X-Handover-Message-ID``,
``X-Handover-Sender``, ``X-Correlation-ID`` when the sender gave one, and ``Authorization: Bearer`` a JWT the hub
signs with its own key (``iss`` = ``sub`` = ``hub``, ``aud`` = the recipient's ODS code, five minutes, single-use
``jti``). Answers: 2xx or 409 (already have it) = delivered; 408, 429, 5xx, a timeout or a broken connection =
try again later (honouring ``Retry-After``); any other 4xx = refused for good (dead letter). Anything else
(1xx, 3xx: redirects are not followed) is retried until the delivery window ends. The recipient's response body
is read (bounded) and discarded: it is never logged or stored.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

import aiohttp

from service.delivery.backoff import parse_retry_after
from service.identity.hubkey import HubKey, hub_jwk
from service.identity.signing import sign_compact_jwt

TOKEN_LIFETIME_SECONDS = 300
MAX_RESPONSE_BYTES = 64 * 1024
_DELIVERY_NAMESPACE = uuid.UUID("4f1b7c1e-8d0a-4c53-9d8e-68616e646f76")


class Verdict(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    REJECTED = "rejected"


@dataclass(frozen=True)
class PushRequest:
    """One message to one recipient: where, who, and the original signed bytes."""

    endpoint: str
    recipient_ods: str
    sender_ods: str
    message_id: UUID
    correlation_id: UUID | None
    body: bytes


@dataclass(frozen=True)
class PushOutcome:
    """What an attempt came to. `error` is a short description for the delivery row (status or error type)."""

    verdict: Verdict
    status: int | None = None
    retry_after: timedelta | None = None
    error: str | None = None


def classify(status: int) -> Verdict:
    """The meaning of an HTTP status for a push (module docstring)."""
    if 200 <= status < 300 or status == 409:
        return Verdict.DELIVERED
    if status in (408, 429) or status >= 500:
        return Verdict.RETRY
    if 400 <= status < 500:
        return Verdict.REJECTED
    return Verdict.RETRY


def delivery_request_id(message_id: UUID, recipient_ods: str) -> UUID:
    """The X-Request-ID of every attempt to deliver `message_id` to `recipient_ods`: the same on each retry."""
    return uuid.uuid5(_DELIVERY_NAMESPACE, f"{message_id}/{recipient_ods}")


def process_message_url(endpoint: str) -> str:
    return endpoint.rstrip("/") + "/$process-message"


class PushClient:
    """Makes push attempts over `session` as the hub (signing bearer tokens with `hub_private_jwk`); each attempt
    is bounded by `timeout_seconds` in all."""

    def __init__(self, session: aiohttp.ClientSession, hub_private_jwk: HubKey, *, timeout_seconds: float) -> None:
        self._session = session
        self._hub_key = hub_private_jwk
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)

    def bearer_token(self, recipient_ods: str) -> str:
        now = int(time.time())  # wall-clock: the recipient checks it against its own clock
        claims = {
            "iss": "hub",
            "sub": "hub",
            "aud": recipient_ods,
            "iat": now,
            "exp": now + TOKEN_LIFETIME_SECONDS,
            "jti": str(uuid.uuid4()),
        }
        return sign_compact_jwt(claims, hub_jwk(self._hub_key))

    def headers(self, request: PushRequest) -> dict[str, str]:
        headers = {
            "Content-Type": "application/fhir+json",
            "Accept": "application/fhir+json",
            "X-Request-ID": str(delivery_request_id(request.message_id, request.recipient_ods)),
            "X-Handover-Message-ID": str(request.message_id),
            "X-Handover-Sender": request.sender_ods,
            "Authorization": f"Bearer {self.bearer_token(request.recipient_ods)}",
        }
        if request.correlation_id is not None:
            headers["X-Correlation-ID"] = str(request.correlation_id)
        return headers

    async def push(self, request: PushRequest, *, now: datetime) -> PushOutcome:
        """One attempt; never raises for network trouble (that is a RETRY outcome). `now` dates Retry-After."""
        try:
            async with self._session.post(
                process_message_url(request.endpoint),
                data=request.body,
                headers=self.headers(request),
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                await _drain(response)
                status = response.status
                retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
        except TimeoutError:
            return PushOutcome(Verdict.RETRY, error="timeout")
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as err:
            return PushOutcome(Verdict.RETRY, error=type(err).__name__)
        verdict = classify(status)
        return PushOutcome(verdict, status, retry_after if verdict is Verdict.RETRY else None, f"HTTP {status}")


async def _drain(response: aiohttp.ClientResponse) -> None:
    """Read the body to its end (so a broken response shows as an error), keeping at most MAX_RESPONSE_BYTES."""
    seen = 0
    while seen <= MAX_RESPONSE_BYTES:
        chunk = await response.content.read(16 * 1024)
        if not chunk:
            return
        seen += len(chunk)
