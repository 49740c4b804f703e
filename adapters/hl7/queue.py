"""The connector's durable queue on disk: what the EPR sent, signed, until the hub's receipt is back.

Each EPR message is one JSON file, written to a temporary name, fsynced, renamed into place and the directory
fsynced, so a crash leaves either the whole entry or none. `pending/` holds signed messages not yet receipted,
in arrival order (the name starts with a nanosecond sequence); `done/` holds the ACK given for each control ID,
so an EPR that re-sends a message (same MSH-10) gets the same answer and the hub gets no second copy.
`received/` keeps the transfers of care received from the hub, which the EPR's RRI^I12 answers name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from adapters.durable import fsync_directory, write_atomically


@dataclass(frozen=True)
class Entry:
    """One EPR message: its MSH-10, who to answer, the signed Bundle to send, and (once done) the ACK given."""

    control_id: str
    epr_application: str
    epr_facility: str
    trigger: str
    signed: dict[str, Any]
    ack: str | None = None  # the HL7 ACK (latin text of the bytes) once the outcome is known

    @property
    def key(self) -> str:
        return key_of(self.epr_facility, self.control_id)

    @property
    def request_id(self) -> str:
        """The X-Request-ID of every send of this entry: the same each time, so the hub's idempotency rules
        answer a re-send (after a crash or a lost reply) with the original receipt."""
        return str(uuid.uuid5(uuid.NAMESPACE_OID, self.key))

    @property
    def header_id(self) -> str:
        return str(self.signed["entry"][0]["resource"]["id"])


def key_of(facility: str, control_id: str) -> str:
    return hashlib.sha256(f"{facility}|{control_id}".encode()).hexdigest()[:40]


class DiskQueue:
    """The queue under `root` (created if absent)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for name in ("pending", "done", "received"):
            (root / name).mkdir(parents=True, exist_ok=True)

    def enqueue(self, entry: Entry) -> None:
        name = f"{time.time_ns():020d}-{entry.key}.json"
        write_atomically(self.root / "pending" / name, json.dumps(asdict(entry)).encode())

    def pending(self) -> list[Entry]:
        """What still awaits a receipt, oldest first."""
        return [self._read(path) for path in sorted((self.root / "pending").glob("*.json"))]

    def is_pending(self, key: str) -> bool:
        return any((self.root / "pending").glob(f"*-{key}.json"))

    def finish(self, entry: Entry, ack: bytes) -> None:
        """Record the ACK for `entry`, then drop it from pending (done first: a crash between leaves no resend)."""
        done = Entry(**{**asdict(entry), "ack": ack.decode("utf-8")})
        write_atomically(self.root / "done" / f"{entry.key}.json", json.dumps(asdict(done)).encode())
        for path in (self.root / "pending").glob(f"*-{entry.key}.json"):
            path.unlink()
        fsync_directory(self.root / "pending")

    def done(self, key: str) -> Entry | None:
        path = self.root / "done" / f"{key}.json"
        return self._read(path) if path.exists() else None

    def sent_control_ids(self) -> dict[str, str]:
        """The EPR's MSH-10 of each message sent, by its MessageHeader id (for ACKs of business acknowledgements)."""
        entries = [self._read(p) for p in (self.root / "done").glob("*.json")]
        return {entry.header_id: entry.control_id for entry in entries}

    def keep_received(self, identifier: str, bundle: dict[str, Any]) -> None:
        write_atomically(self.root / "received" / f"{key_of('', identifier)}.json", json.dumps(bundle).encode())

    def received(self, identifier: str) -> dict[str, Any] | None:
        path = self.root / "received" / f"{key_of('', identifier)}.json"
        with contextlib.suppress(FileNotFoundError):
            bundle: dict[str, Any] = json.loads(path.read_bytes())
            return bundle
        return None

    @staticmethod
    def _read(path: Path) -> Entry:
        return Entry(**json.loads(path.read_bytes()))
