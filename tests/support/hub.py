"""A real Handover hub on a real port for a test, with its own database and the session's network keys."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from adapters.trust_client import TrustClient
from service.app import build_app, make_runner
from service.clock import Clock, utc_now
from service.config import Settings
from service.identity.keystore import init_keys, load_private_jwk
from service.identity.registry import Registry, load_registry
from service.identity.roles import StaffRole
from service.identity.staff import ensure_dev_staff_key, mint_dev_staff_token
from service.terminology import load_code_system

ROOT = Path(__file__).resolve().parents[2]
EVENT_SYSTEM = load_code_system("handover-event").url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Network:
    """A copy of the default network with freshly generated keys, in a temporary directory."""

    network_path: Path
    keys_dir: Path
    registry: Registry

    @classmethod
    def create(cls, directory: Path) -> Network:
        directory.mkdir(parents=True, exist_ok=True)
        network_path = directory / "network.json"
        shutil.copy(ROOT / "keys" / "network.json", network_path)
        keys_dir = directory / "private"
        init_keys(network_path, keys_dir)
        ensure_dev_staff_key(keys_dir)
        return cls(network_path, keys_dir, load_registry(network_path))

    def edited(self, directory: Path, edit: Callable[[dict[str, Any]], None]) -> Network:
        """A copy (same private keys) whose registry document has been changed by `edit(doc)`."""
        directory.mkdir(parents=True, exist_ok=True)
        doc = json.loads(self.network_path.read_text())
        edit(doc)
        path = directory / "network.json"
        path.write_text(json.dumps(doc))
        shutil.copytree(self.keys_dir, directory / "private")
        return Network(path, directory / "private", load_registry(path))

    def private_key(self, owner: str) -> dict[str, Any]:
        return load_private_jwk(self.keys_dir, owner)


@dataclass
class RunningHub:
    base_url: str
    settings: Settings
    dsn: str
    network: Network
    session: aiohttp.ClientSession
    app: web.Application

    def staff_token(self, role: str, user: str = "test.user") -> str:
        return mint_dev_staff_token(self.network.keys_dir, user, StaffRole(role))

    def trust(self, ods: str) -> TrustClient:
        return TrustClient(self.session, self.base_url, ods, self.network.private_key(ods), self.network.registry)

    async def post_raw(
        self, body: bytes, *, as_ods: str = "RM1", headers: dict[str, str] | None = None, request_id: str | None = None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """POST bytes to $process-message with a valid token; returns status, JSON body, headers."""
        sent = {
            "Content-Type": "application/fhir+json",
            "X-Request-ID": request_id or str(uuid.uuid4()),
            "Authorization": f"Bearer {self.trust(as_ods).bearer_token()}",
        }
        sent.update(headers or {})
        async with self.session.post(f"{self.base_url}/fhir/$process-message", data=body, headers=sent) as resp:
            raw = await resp.read()
            return resp.status, json.loads(raw) if raw else {}, dict(resp.headers)


def settings_for(network: Network, dsn: str, port: int, **overrides: Any) -> Settings:
    # Every test signs in from 127.0.0.1, many times a minute: the per-client limit on sign-in starts is lifted
    # unless a test sets it (tests/ui/test_sessions.py does).
    overrides.setdefault("ui_sign_in_starts_per_minute", 100_000)
    base = Settings.from_env({"HANDOVER_LISTEN": f"127.0.0.1:{port}"})
    return replace(base, database_url=dsn, network_path=network.network_path, keys_dir=network.keys_dir, **overrides)


@asynccontextmanager
async def running_hub(
    network: Network,
    dsn: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    client_ssl: ssl.SSLContext | None = None,
    clock: Clock = utc_now,
    **overrides: Any,
) -> AsyncIterator[RunningHub]:
    """The real service on a free port; with `ssl_context` it speaks TLS, and the session presents `client_ssl`."""
    port = free_port()
    settings = settings_for(network, dsn, port, **overrides)
    app = build_app(settings, dsn, clock=clock)
    runner = make_runner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context).start()
        scheme = "https" if ssl_context is not None else "http"
        connector = aiohttp.TCPConnector(ssl=client_ssl) if client_ssl is not None else None
        async with aiohttp.ClientSession(auto_decompress=False, connector=connector) as session:
            yield RunningHub(f"{scheme}://127.0.0.1:{port}", settings, dsn, network, session, app)
    finally:
        await runner.cleanup()
