"""One MESH mailbox over the official `mesh-client` library, made awaitable.

`mesh-client` is synchronous (requests); every call runs in a worker thread, one at a time per mailbox (the
client's session is not shared between threads). Failures are sorted into two kinds the bridge acts on:
`MeshUnavailableError` (MESH could not be reached or answered 5xx/429: try again later, nothing was changed) and
`MeshRefusedError` (MESH answered that it will not do this, e.g. 417 for an unknown recipient mailbox).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import mesh_client
import requests

from service.mesh.settings import MeshSettings

T = TypeVar("T")
MAX_MESSAGE_BYTES = 100 * 1024 * 1024  # MESH's own ceiling; the intake applies the hub's smaller body limit


class MeshUnavailableError(Exception):
    """MESH could not be reached, or answered that it cannot serve now; nothing changed."""


class MeshRefusedError(Exception):
    """MESH refused the request for good (e.g. an unknown recipient mailbox)."""


@dataclass(frozen=True)
class ReceivedMessage:
    """A message read from the inbox: its MESH id, type (DATA or REPORT), sender mailbox, workflow, local id,
    the message a REPORT is about (`linked_message_id`), the report's status, and the bytes."""

    message_id: str
    message_type: str
    sender: str | None
    workflow_id: str | None
    local_id: str | None
    linked_message_id: str | None
    status: str | None
    body: bytes


@dataclass(frozen=True)
class Tracking:
    """What MESH says of a message we sent: `accepted` (waiting in the inbox), `acknowledged` (downloaded and
    acknowledged by the recipient), `undeliverable` or `error` (expired or refused)."""

    status: str
    description: str | None


class MeshMailbox:
    """The mailbox `settings.mailbox` at `settings.url` (a `mesh_client.MeshClient` underneath)."""

    def __init__(self, settings: MeshSettings, *, timeout_seconds: float = 30, max_retries: int = 0) -> None:
        self.mailbox = settings.mailbox
        cert = (str(settings.client_cert), str(settings.client_key)) if settings.client_cert else None
        verify: str | None = str(settings.ca_cert) if settings.ca_cert else None
        self._client = mesh_client.MeshClient(
            settings.url,
            settings.mailbox,
            settings.password,
            shared_key=settings.shared_key.encode(),
            cert=cert,
            verify=verify,
            timeout=timeout_seconds,
            max_retries=max_retries,  # the bridge retries on its own schedule; each call is one attempt
            application_name="handover",
        )
        self._lock = asyncio.Lock()

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]

    async def handshake(self) -> None:
        await self._call(self._client.handshake)

    async def inbox(self) -> list[str]:
        """Ids of the messages waiting in the inbox (a page of up to 500, oldest first)."""
        return await self._call(lambda: list(self._client.list_messages()))

    async def retrieve(self, message_id: str, *, limit: int = MAX_MESSAGE_BYTES) -> ReceivedMessage:
        """The message with at most `limit` + 1 bytes of its body read (so a longer one shows as too long)."""
        return await self._call(lambda: self._retrieve(message_id, limit))

    async def acknowledge(self, message_id: str) -> None:
        """Tell MESH the message is dealt with (it leaves the inbox and its sender sees `acknowledged`)."""
        await self._call(lambda: self._client.acknowledge_message(message_id))

    async def send(self, recipient: str, body: bytes, *, workflow_id: str, local_id: str, subject: str) -> str:
        """Send `body` to the mailbox `recipient`; returns MESH's message id."""
        return await self._call(
            lambda: self._client.send_message(
                recipient,
                body,
                workflow_id=workflow_id,
                local_id=local_id,
                subject=subject,
                content_type="application/fhir+json",
            )
        )

    async def track(self, message_id: str) -> Tracking:
        tracked = await self._call(lambda: self._client.track_message(message_id))
        return Tracking(str(tracked.get("status") or "").lower(), tracked.get("status_description"))

    # ------------------------------------------------------------------------------------------- internals

    def _retrieve(self, message_id: str, limit: int) -> ReceivedMessage:
        # Not `with message:` - leaving that block acknowledges, and we acknowledge only after our commit.
        message = self._client.retrieve_message(message_id)
        try:
            body = message.read(limit + 1)
        finally:
            message.close()  # type: ignore[no-untyped-call]
        return ReceivedMessage(
            message_id=message_id,
            message_type=str(message.message_type or "DATA").upper(),
            sender=(message.sender or "").upper() or None,
            workflow_id=message.workflow_id,
            local_id=message.local_id,
            linked_message_id=message.mex_header("linkedmsgid"),
            status=message.mex_header("statusdescription") or message.mex_header("statuscode"),
            body=body,
        )

    async def _call(self, work: Callable[[], T]) -> T:
        async with self._lock:
            try:
                return await asyncio.to_thread(work)
            except mesh_client.MeshError as err:
                raise MeshRefusedError(str(err.args[0]) if err.args else "refused by MESH") from None
            except requests.HTTPError as err:
                status = err.response.status_code if err.response is not None else None
                if status is not None and 400 <= status < 500 and status not in (408, 425, 429):
                    raise MeshRefusedError(f"MESH answered HTTP {status}") from None
                raise MeshUnavailableError(f"MESH answered HTTP {status}") from None
            except (requests.RequestException, OSError) as err:
                raise MeshUnavailableError(type(err).__name__) from None
