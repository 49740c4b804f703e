"""The MESH peer for the load benchmark: NHS England's `mesh-sandbox` served by uvicorn on a free local port (in
memory, no validation, no signatures, no database), and the official `mesh-client` sending the same payload
bytes as the hub receives, one message at a time, from the sandbox's canned mailbox X26ABC1 to X26ABC2.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from mesh_client import MeshClient

from bench.load_hub import free_port

SENDER, RECIPIENT = "X26ABC1", "X26ABC2"  # mailboxes the sandbox's canned data defines
SHARED_KEY, PASSWORD = "TestKey", "password"


def _serve(directory: Path, port: int) -> subprocess.Popen[bytes]:
    directory.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "STORE_MODE": os.environ.get("HANDOVER_BENCH_MESH_STORE", "file"),
        "AUTH_MODE": "full",
        "SHARED_KEY": SHARED_KEY,
        "MAILBOXES_DATA_DIR": str(directory),
    }
    command = [sys.executable, "-m", "uvicorn", "mesh_sandbox.api:app", "--port", str(port), "--log-level", "warning"]
    with (directory / "sandbox.log").open("wb") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=log)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("mesh-sandbox exited; see its log")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:  # noqa: S310 - our own local sandbox
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise RuntimeError("mesh-sandbox did not become healthy")


def _sends_per_second(url: str, payload: bytes, count: int) -> float:
    with MeshClient(url=url, mailbox=SENDER, password=PASSWORD, shared_key=SHARED_KEY.encode(), verify=False) as mesh:
        for _ in range(max(10, count // 10)):  # warm-up
            mesh.send_message(RECIPIENT, payload, workflow_id="HANDOVER_REFERRAL")
        started = time.perf_counter()
        for _ in range(count):
            mesh.send_message(RECIPIENT, payload, workflow_id="HANDOVER_REFERRAL")
        return count / (time.perf_counter() - started)


async def mesh_sequential_sends(directory: Path, payload: bytes, count: int) -> float:
    """Sends per second of one sequential mesh-client sender to a local mesh-sandbox."""
    port = free_port()
    proc = _serve(directory, port)
    url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(_wait_healthy, url, proc)
        return await asyncio.to_thread(_sends_per_second, url, payload, count)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
