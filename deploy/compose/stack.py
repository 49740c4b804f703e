"""The docker-compose stack `make compose-check` drives: which compose and base image to use, what the build is
given to reach the host's package index, the throwaway development keys the hubs are started with, and what
Patroni says about its nodes.

Everything runs on this machine: the stack's network is a local docker bridge, and only the hubs are
published, on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "handover-compose-check"
HUB_UID = 10001  # the hub image's user (Dockerfile)
HUB_KEY_FILES = ("hub.jwk", "kek.key", "staff-idp.jwk", "pseudonym.key")  # what a hub reads; no trust's key
DOCKER_HUB_BASE = "python:3.11-slim"
DEBIAN_BASE = "handover-base:bookworm"
HOST_EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
PIP_SETTINGS = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST")


class StackError(Exception):
    """The stack could not be built, started or asked: one sentence for the operator."""


def say(message: str) -> None:
    print(message, flush=True)


def run(command: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 600) -> str:
    """Run `command`, returning its stdout; StackError with the tail of its output if it fails."""
    result = subprocess.run(
        list(command), capture_output=True, text=True, env=env, timeout=timeout, check=False, cwd=ROOT
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise StackError(f"`{' '.join(command[:4])} …` exited {result.returncode}:\n{tail}")
    return result.stdout


def docker_ready() -> None:
    if shutil.which("docker") is None:
        raise StackError("docker is not installed: apt-get install docker.io docker-compose")
    if subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=60).returncode != 0:
        raise StackError("the docker daemon does not answer: start it (`dockerd &` as root, or systemctl start docker)")


def compose_command() -> list[str]:
    """`docker compose` (v2 plugin) where there is one, else Debian's docker-compose (v1)."""
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False, timeout=60)
    if plugin.returncode == 0:
        return ["docker", "compose"]
    found = shutil.which("docker-compose")
    if found is None:
        raise StackError("neither `docker compose` nor docker-compose is installed: apt-get install docker-compose")
    return [found]


def _image_exists(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True, check=False).returncode == 0


def choose_base_image() -> str:
    """BASE_IMAGE if given; else python:3.11-slim if it is here or can be pulled; else a Debian base made here
    from Debian's packages (deploy/compose/make-base.sh), for machines that cannot reach Docker Hub."""
    if os.environ.get("BASE_IMAGE"):
        return os.environ["BASE_IMAGE"]
    if _image_exists(DOCKER_HUB_BASE):
        return DOCKER_HUB_BASE
    pulled = subprocess.run(["docker", "pull", "-q", DOCKER_HUB_BASE], capture_output=True, check=False, timeout=300)
    if pulled.returncode == 0:
        return DOCKER_HUB_BASE
    say(f"  {DOCKER_HUB_BASE} cannot be pulled (Docker Hub unreachable): using a base made from Debian packages")
    if not _image_exists(DEBIAN_BASE):
        say(f"  making {DEBIAN_BASE} with mmdebstrap (about a minute)")
        run([str(ROOT / "deploy/compose/make-base.sh"), DEBIAN_BASE], timeout=1200)
    return DEBIAN_BASE


def build_arguments(base_image: str) -> dict[str, str]:
    """The build's environment: the base, pip's index settings as the host has them, and the CA certificates
    the host trusts beyond Debian's (a TLS-intercepting proxy's, say), trusted only while pip runs."""
    args = {"BASE_IMAGE": base_image}
    for name in PIP_SETTINGS:
        value = os.environ.get(name) or _pip_config(name.removeprefix("PIP_").lower().replace("_", "-"))
        # A file:// index is a directory on this host, which the build cannot see.
        reachable = " ".join(url for url in (value or "").split() if not url.startswith("file:"))
        if reachable:
            args[name] = reachable
            say(f"  {name}={reachable} (from the host's pip settings)")
    if os.environ.get("EXTRA_CA_CERTS"):
        args["EXTRA_CA_CERTS"] = os.environ["EXTRA_CA_CERTS"]
    else:
        pems = sorted(HOST_EXTRA_CA_DIR.glob("*.crt")) if HOST_EXTRA_CA_DIR.is_dir() else []
        if pems:
            args["EXTRA_CA_CERTS"] = "\n".join(p.read_text(encoding="ascii").strip() for p in pems)
            say(f"  the build trusts {len(pems)} extra CA certificate(s) from {HOST_EXTRA_CA_DIR} while pip runs")
    return args


def _pip_config(key: str) -> str | None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", f"global.{key}"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


@dataclass
class DevKeys:
    """Throwaway development keys in `directory`: `network.json` (public keys), `private/` (every key, for the
    trusts the check plays) and `hub/` (only what a hub reads, owned by the hub image's user)."""

    directory: Path

    @property
    def network(self) -> Path:
        return self.directory / "network.json"

    @property
    def private(self) -> Path:
        return self.directory / "private"

    @property
    def hub(self) -> Path:
        return self.directory / "hub"

    def make(self) -> None:
        """`handover keys init` into `directory`, then the hubs' share of it."""
        python = sys.executable
        shutil.copy(ROOT / "keys/network.json", self.network)
        env = {**os.environ, "HANDOVER_NETWORK": str(self.network), "HANDOVER_KEYS_DIR": str(self.private)}
        run([str(Path(python).parent / "handover"), "keys", "init"], env=env)
        # The hubs share one pseudonym key; `keys init` leaves it to the first start, which a read-only mount
        # cannot do, so it is made here by the service's own code.
        run(
            [
                python,
                "-c",
                "import sys, pathlib; from service.pseudonyms import Pseudonymiser; "
                "Pseudonymiser.from_keys_dir(pathlib.Path(sys.argv[1]))",
                str(self.private),
            ]
        )
        self.hub.mkdir()
        for name in HUB_KEY_FILES:
            shutil.copy(self.private / name, self.hub / name)
        self._give_to_hub_user()

    def _give_to_hub_user(self) -> None:
        if os.geteuid() == 0:
            for path in [self.hub, *self.hub.iterdir()]:
                os.chown(path, HUB_UID, HUB_UID)
        else:  # docker's own root does it, so no sudo is needed
            _as_docker_root(self.hub, "/k", "chown", "-R", f"{HUB_UID}:{HUB_UID}", "/k")
        self.hub.chmod(0o755)

    def remove(self) -> None:
        if os.geteuid() != 0 and self.hub.exists():
            _as_docker_root(self.directory, "/d", "rm", "-rf", "/d/hub")
        shutil.rmtree(self.directory, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def last_promotion(timestamped_log: str) -> float | None:
    """The time (epoch seconds) of the last "promoted self to leader" line in a `docker logs -t` output, whose
    lines start with an RFC 3339 UTC timestamp in nanoseconds; None if there is no such line."""
    found = None
    for line in timestamped_log.splitlines():
        if "promoted self to leader" in line:
            whole, _, fraction = line.split()[0].rstrip("Z").partition(".")
            found = datetime.fromisoformat(f"{whole}.{(fraction or '0')[:6]:0<6}+00:00").timestamp()
    return found


@dataclass
class Stack:
    """The compose project `PROJECT` of docker-compose.yml, with the environment it is built and run with."""

    compose: list[str]
    env: dict[str, str]
    hub_ports: dict[str, int] = field(default_factory=dict)

    @classmethod
    def configure(cls, keys: DevKeys, build_args: Mapping[str, str]) -> Stack:
        ports = {"hub1": free_port(), "hub2": free_port()}
        env = {
            **os.environ,
            **build_args,
            "KEYS_HOST_DIR": str(keys.hub),
            "NETWORK_HOST_FILE": str(keys.network),
            "HUB1_PORT": str(ports["hub1"]),
            "HUB2_PORT": str(ports["hub2"]),
        }
        return cls(compose_command(), env, ports)

    def __call__(self, *arguments: str, timeout: float = 900) -> str:
        return run(
            [*self.compose, "-p", PROJECT, "-f", str(ROOT / "docker-compose.yml"), *arguments],
            env=self.env,
            timeout=timeout,
        )

    def url(self, hub: str) -> str:
        return f"http://127.0.0.1:{self.hub_ports[hub]}"

    def container(self, service: str) -> str:
        return self("ps", "-q", service).strip()

    def patroni_members(self, service: str) -> list[dict[str, Any]]:
        """`patronictl list` as JSON, asked of `service`'s node: name, role (Leader / Sync Standby / Replica)."""
        out = run(
            [
                "docker",
                "exec",
                self.container(service),
                "patronictl",
                "-c",
                "/etc/patroni/patroni.yml",
                "list",
                "-f",
                "json",
            ],
            timeout=60,
        )
        members: list[dict[str, Any]] = json.loads(out)
        return members

    def patroni_table(self, service: str) -> str:
        return run(
            ["docker", "exec", self.container(service), "patronictl", "-c", "/etc/patroni/patroni.yml", "list"],
            timeout=60,
        )

    def kill(self, service: str) -> None:
        """SIGKILL `service`'s container, as a power cut would stop it (no shutdown, no leader lock released)."""
        run(["docker", "kill", "--signal", "KILL", self.container(service)], timeout=60)

    def promoted_at(self, service: str) -> float | None:
        """When Patroni on `service` last promoted its PostgreSQL to leader (epoch seconds), or None."""
        logs = subprocess.run(
            ["docker", "logs", "-t", self.container(service)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=60,
            check=False,
        )
        return last_promotion(logs.stdout)

    def restart_count(self, service: str) -> int:
        return int(run(["docker", "inspect", "-f", "{{.RestartCount}}", self.container(service)]).strip())

    def logs(self, *services: str, lines: int = 30) -> str:
        try:
            return self("logs", "--no-color", f"--tail={lines}", *services, timeout=60)
        except StackError as err:
            return str(err)


def _as_docker_root(host: Path, mount: str, command: str, *args: str) -> None:
    """Run `command args` as root in the hub image with `host` mounted at `mount`: the keys are the hub user's, and
    docker's own root can change or remove them without sudo."""
    run(
        [
            "docker",
            "run",
            "--rm",
            "-u",
            "0",
            "-v",
            f"{host}:{mount}",
            "--entrypoint",
            command,
            "handover-hub:dev",
            *args,
        ]
    )
