"""`handover serve` processes for the HA tests, each as its own machine would run it, and their logs."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.support.hub import ROOT, Network, free_port
from tests.support.processes import HANDOVER, serve_env, stop


def hub_env(network: Network, dsn: str, port: int, kek: Path, **settings: str) -> dict[str, str]:
    return serve_env(
        network,
        dsn,
        port,
        kek,
        **{
            "HANDOVER_CHECKPOINT_RECORD_DIR": "off",
            # The registry's push endpoints are nowhere here: a short timeout keeps a push in flight from holding
            # up a hub's graceful stop (pushes in flight are given their timeout to finish).
            "HANDOVER_PUSH_TIMEOUT_SECONDS": "2",
            **settings,
        },
    )


@dataclass
class HubProcess:
    """One `handover serve` with its JSON log lines in `log_path`."""

    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def log_messages(self) -> list[str]:
        found = []
        for line in self.log_lines():
            try:
                found.append(str(json.loads(line).get("message", "")))
            except ValueError:
                found.append(line)
        return found

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/readyz", timeout=2) as resp:  # noqa: S310 (http only)
                return bool(resp.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def wait_ready(self, within: float = 90.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"hub exited with {self.proc.returncode}:\n" + "\n".join(self.log_lines())
            if self.ready():
                return
            time.sleep(0.2)
        raise AssertionError("hub did not become ready:\n" + "\n".join(self.log_lines()[-20:]))

    def stop(self) -> None:
        stop(self.proc)


def start_hub(
    env: dict[str, str], log_dir: Path, *, workers: int = 1, command: list[str] | None = None, cwd: Path = ROOT
) -> HubProcess:
    """Start `handover serve` (or `command` in `cwd`, e.g. an older release's) with `env`; output to a log file."""
    port = int(env["HANDOVER_LISTEN"].rpartition(":")[2])
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"hub-{port}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            command or [HANDOVER, "serve", "--workers", str(workers)],
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
    return HubProcess(port, proc, log_path)


__all__ = ["HubProcess", "free_port", "hub_env", "start_hub"]
