"""Running the `handover` command as a separate process, as an operator would: its environment, waiting for it to be
ready, stopping it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.hub import Network

HANDOVER = str(Path(sys.executable).parent / "handover")


def wait_healthy(port: int, proc: subprocess.Popen[bytes], within: float = 90.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"handover exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise AssertionError("handover serve did not become ready")


def serve_env(network: Network, dsn: str, port: int, kek: Path, **settings: str) -> dict[str, str]:
    """This process's environment without its HANDOVER_ settings, then a hub on `port` of `network` with the KEK
    `kek` and the database `dsn`, then `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOVER_")}
    env.update(
        HANDOVER_LISTEN=f"127.0.0.1:{port}",
        HANDOVER_NETWORK=str(network.network_path),
        HANDOVER_KEYS_DIR=str(network.keys_dir),
        HANDOVER_KEK_FILE=str(kek),
        HANDOVER_DATABASE_URL=dsn,
    )
    env.update(settings)
    return env


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a graceful stop), then SIGKILL if it has not ended within 30 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
