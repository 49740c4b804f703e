"""NHS England's MESH sandbox (PyPI `mesh-sandbox`) as a real process for the tests, and trusts on it.

The sandbox runs under uvicorn in its `file` store mode: every mailbox is a directory under its data directory
(created before it starts), messages and their status live on disk, so a sandbox stopped and started again
(same port, same directory) has lost nothing. Authentication is its `full` mode: MESH's HMAC tokens with a shared
key and each mailbox's password (`password` for directory-made mailboxes). Its admin API stands in for what MESH
does on its own schedule (a message left uncollected until it expires becomes undeliverable, with a report).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import mesh_client

from adapters.mesh_trust import MeshTrust
from service.mesh.settings import MeshSettings
from tests.support.hub import Network, free_port

SHARED_KEY = "HandoverTestSharedKey"
PASSWORD = "password"  # the sandbox's password for mailboxes it finds as directories
HUB_MAILBOX = "HANDOVERHUB1"
# RM1 and RDE reach the hub only through MESH; RC9's registered mailbox does not exist on MESH.
MAILBOXES = {"RM1": "RM1MESH01", "RDE": "RDEMESH01", "RC9": "RC9GONE01"}
UNREGISTERED = "X26STRANGER"
ON_MESH = (HUB_MAILBOX, MAILBOXES["RM1"], MAILBOXES["RDE"], UNREGISTERED)


def with_mesh_mailboxes(doc: dict[str, Any]) -> None:
    for ods, mailbox in MAILBOXES.items():
        doc["participants"][ods]["mesh_mailbox"] = mailbox


@dataclass
class MeshSandbox:
    directory: Path
    mailboxes: tuple[str, ...]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    clients: list[mesh_client.MeshClient] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        for mailbox in self.mailboxes:
            (self.directory / mailbox / "in").mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "STORE_MODE": "file",
            "MAILBOXES_DATA_DIR": str(self.directory),
            "AUTH_MODE": "full",
            "SHARED_KEY": SHARED_KEY,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "mesh_sandbox.api:app", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"mesh-sandbox exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:  # noqa: S310 (local sandbox)
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise AssertionError("mesh-sandbox did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)
        self.process = None

    def settings(self, mailbox: str, **overrides: Any) -> MeshSettings:
        return MeshSettings(
            url=self.url,
            mailbox=mailbox,
            password=PASSWORD,
            shared_key=SHARED_KEY,
            poll_seconds=overrides.pop("poll_seconds", 0.2),
            track_seconds=overrides.pop("track_seconds", 0.1),
            **overrides,
        )

    def client(self, mailbox: str) -> mesh_client.MeshClient:
        """The official client, as a trust's own MESH integration would use it."""
        client = mesh_client.MeshClient(self.url, mailbox, PASSWORD, shared_key=SHARED_KEY.encode(), max_retries=0)
        self.clients.append(client)
        return client

    def inbox(self, mailbox: str) -> list[str]:
        return list(self.client(mailbox).list_messages())

    def close(self) -> None:
        """Stop the sandbox and close every client made for the test."""
        self.stop()
        for client in self.clients:
            client.close()  # type: ignore[no-untyped-call]

    def expire(self, message_id: str, *, sender_mailbox: str, workflow: str) -> None:
        """What MESH does to a message its recipient never collects: mark it undeliverable and put a
        non-delivery report (linked to it) in the sender's inbox."""
        description = "Message not collected by recipient after 5 days"
        self._admin(
            f"/messageexchange/admin/message/{message_id}/event",
            {"status": "undeliverable", "event": "TRANSFER", "code": "14", "description": description},
        )
        self._admin(
            "/messageexchange/admin/report",
            {
                "mailbox_id": sender_mailbox,
                "code": "14",
                "description": description,
                "workflow_id": workflow,
                "status": "undeliverable",
                "linked_message_id": message_id,
            },
        )

    def _admin(self, path: str, body: dict[str, Any]) -> None:
        request = urllib.request.Request(  # noqa: S310 (our own local sandbox)
            f"{self.url}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310
            assert resp.status == 200, resp.status


def mesh_trust(sandbox: MeshSandbox, network: Network, ods: str, mailbox: str | None = None) -> MeshTrust:
    """Trust `ods` on MESH (its own mailbox unless `mailbox` names another), signing with its own key."""
    client = sandbox.client(mailbox or MAILBOXES[ods])
    return MeshTrust(client, ods, network.private_key(ods), network.registry, HUB_MAILBOX)


async def in_thread(call: Any, *args: Any) -> Any:
    """The trust side is synchronous (mesh-client); run it off the event loop."""
    return await asyncio.to_thread(call, *args)


async def audit_events(dsn: str, message_id: object) -> list[tuple[str, str, dict[str, Any]]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT event_type, outcome, leaf FROM audit_events WHERE message_id = $1 ORDER BY seq", message_id
        )
    finally:
        await conn.close()
    return [(r["event_type"], r["outcome"], json.loads(bytes(r["leaf"]))) for r in rows]


async def count(dsn: str, sql: str, *args: object) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(sql, *args))
    finally:
        await conn.close()
