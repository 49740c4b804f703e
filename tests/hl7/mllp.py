"""Both ends of a real MLLP connection for the tests: send a frame and read the ACK, and an EPR's MLLP listener
that records what it is given and answers AA."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import hl7
import hl7.mllp

START, END = b"\x0b", b"\x1c\r"


async def send(port: int, message: str | bytes, *, within: float = 30.0) -> hl7.Message:
    """One frame to the connector on `port`; its ACK, parsed."""
    reader, writer = await hl7.mllp.open_hl7_connection("127.0.0.1", port)
    try:
        writer.writeblock(message.encode() if isinstance(message, str) else message)
        await writer.drain()
        return hl7.parse((await asyncio.wait_for(reader.readblock(), within)).decode())
    finally:
        writer.close()


def ack_code(ack: hl7.Message) -> str:
    return str(ack.extract_field("MSA", 1, 1, 1, 1))


def err_location(ack: hl7.Message) -> str:
    return str(ack.segment("ERR")(2))


class EprListener:
    """An EPR's inbound MLLP interface on a free port: keeps each message, answers AA."""

    def __init__(self) -> None:
        self.received: list[hl7.Message] = []
        self.arrived = asyncio.Event()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> EprListener:
        self._server = await hl7.mllp.start_hl7_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def next_of(self, kind: str, within: float = 30.0) -> hl7.Message:
        """The first received message of type `kind` (e.g. `RRI^I12`) not yet taken."""
        async with asyncio.timeout(within):
            while True:
                for message in self.received:
                    if f"{message.extract_field('MSH', 1, 9, 1, 1)}^{message.extract_field('MSH', 1, 9, 1, 2)}" == kind:
                        self.received.remove(message)
                        return message
                self.arrived.clear()
                await self.arrived.wait()

    async def _serve(self, reader: hl7.mllp.HL7StreamReader, writer: hl7.mllp.HL7StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                message = await reader.readmessage()
                self.received.append(message)
                self.arrived.set()
                writer.writemessage(message.create_ack("AA"))
                await writer.drain()
        writer.close()


async def until(condition: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    """Wait until `condition()` holds (checked every 0.1 s), or fail with TimeoutError after `within` seconds."""
    async with asyncio.timeout(within):
        while not await condition():  # noqa: ASYNC110 - the conditions are other processes' state, not events
            await asyncio.sleep(0.1)
