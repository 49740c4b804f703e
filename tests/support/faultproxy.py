"""A small asyncio TCP fault proxy of our own (toxiproxy-style), to put in front of PostgreSQL or a recipient.

Faults, changeable at any time and cleared by `heal()`:
* `latency` — delay every chunk by `latency` (± `jitter`) seconds, per direction;
* `hang()` — stop forwarding in both directions (bytes are held, not lost) until `heal()`;
* `reset()` — abort every open connection with a TCP RST; with `refuse=True` new ones are reset too;
* `cut_after(n, direction)` — reset each connection after forwarding `n` bytes in that direction;
* `arm(after, then, action)` — once some connection has sent bytes containing `after`, act on the first chunk
  it then sends containing `then`: `HOLD_REPLIES` (forward it, then never forward the server's answer),
  `HOLD_REQUEST` (never forward it) or `RESET` (forward it, then reset the connection). One shot; `fired` is set.
  In front of PostgreSQL, ``arm(b"INSERT INTO messages", b"COMMIT", …)`` targets an acceptance's COMMIT.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from dataclasses import dataclass, field
from enum import StrEnum


class Direction(StrEnum):
    UPSTREAM = "client->server"
    DOWNSTREAM = "server->client"


class Action(StrEnum):
    HOLD_REPLIES = "hold-replies"
    HOLD_REQUEST = "hold-request"
    RESET = "reset"


@dataclass
class _Trigger:
    after: bytes
    then: bytes
    action: Action


@dataclass(eq=False)
class _Connection:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    sent: dict[Direction, int] = field(default_factory=lambda: dict.fromkeys(Direction, 0))
    held: set[Direction] = field(default_factory=set)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    saw_after: bool = False

    def abort(self) -> None:
        for writer in (self.client, self.server):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()


class FaultProxy:
    """Listens on 127.0.0.1:`port` and forwards to `target_host`:`target_port`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.latency: dict[Direction, float] = dict.fromkeys(Direction, 0.0)
        self.jitter = 0.0
        self.refuse = False
        self.connections_made = 0
        self.fired = asyncio.Event()
        self._cut: dict[Direction, int | None] = dict.fromkeys(Direction)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._trigger: _Trigger | None = None
        self._open: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self._rng = random.Random(0)

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self.heal()
        for conn in list(self._open):
            conn.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------------------------------ the faults

    def hang(self) -> None:
        self._flowing.clear()

    def reset(self, *, refuse: bool = False) -> None:
        self.refuse = refuse
        for conn in list(self._open):
            conn.abort()

    def cut_after(self, n_bytes: int, direction: Direction = Direction.DOWNSTREAM) -> None:
        self._cut[direction] = n_bytes

    def arm(self, after: bytes, then: bytes, action: Action) -> None:
        self.fired.clear()
        self._trigger = _Trigger(after, then, action)

    def heal(self) -> None:
        """Clear every fault: data flows again (held bytes included), no latency, no cuts, no trigger."""
        self.latency = dict.fromkeys(Direction, 0.0)
        self.jitter = 0.0
        self.refuse = False
        self._cut = dict.fromkeys(Direction)
        self._trigger = None
        self._flowing.set()
        for conn in self._open:
            conn.held.clear()
            conn.released.set()

    @property
    def open_connections(self) -> int:
        return len(self._open)

    # -------------------------------------------------------------------------------------------- plumbing

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections_made += 1
        if self.refuse:
            _Connection(client_writer, client_writer).abort()
            return
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        conn = _Connection(client_writer, server_writer)
        self._open.add(conn)
        try:
            await asyncio.gather(
                self._pump(conn, client_reader, server_writer, Direction.UPSTREAM),
                self._pump(conn, server_reader, client_writer, Direction.DOWNSTREAM),
            )
        finally:
            self._open.discard(conn)
            conn.abort()

    async def _pump(
        self, conn: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: Direction
    ) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                    return
                await self._flowing.wait()
                delay = self.latency[direction]
                if delay:
                    await asyncio.sleep(max(0.0, delay + self._rng.uniform(-self.jitter, self.jitter)))
                action = self._match(conn, direction, data)
                if action is Action.HOLD_REQUEST:
                    conn.held.add(Direction.UPSTREAM)
                elif action is Action.RESET:
                    conn.held.add(Direction.DOWNSTREAM)  # the answer to what is sent now never gets back
                while direction in conn.held:
                    conn.released.clear()
                    await conn.released.wait()
                data = self._apply_cut(conn, direction, data)
                writer.write(data)
                await writer.drain()
                if action is Action.HOLD_REPLIES:
                    conn.held.add(Direction.DOWNSTREAM)
                elif action is Action.RESET or conn.sent[direction] == self._cut[direction]:
                    await asyncio.sleep(0.05)  # let the bytes reach the other side first
                    conn.abort()
                    return
        except (ConnectionError, OSError):
            conn.abort()

    def _match(self, conn: _Connection, direction: Direction, data: bytes) -> Action | None:
        trigger = self._trigger
        if trigger is None or direction is not Direction.UPSTREAM:
            return None
        if not conn.saw_after and trigger.after in data:
            conn.saw_after = True
            if trigger.then not in data.split(trigger.after, 1)[1]:
                return None
        if conn.saw_after and trigger.then in data:
            self._trigger = None
            self.fired.set()
            return trigger.action
        return None

    def _apply_cut(self, conn: _Connection, direction: Direction, data: bytes) -> bytes:
        limit = self._cut[direction]
        if limit is not None:
            data = data[: max(0, limit - conn.sent[direction])]
        conn.sent[direction] += len(data)
        return data
