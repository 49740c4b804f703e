"""The hub's MESH mailbox settings (HANDOVER_MESH_*), read by `handover mesh-bridge`, and the workflow IDs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from service.config import _positive_number
from service.errors import ConfigError

RECEIPT_WORKFLOW = "HANDOVER_RECEIPT"
OUTCOME_WORKFLOW = "HANDOVER_OUTCOME"


def workflow_id(event: str) -> str:
    """The MESH workflow ID of a Handover message event: `HANDOVER_` + the event code, upper case, `-` as `_`."""
    return "HANDOVER_" + event.upper().replace("-", "_")


@dataclass(frozen=True)
class MeshSettings:
    """Where the hub's MESH mailbox is and how to sign in to it. `client_cert`/`client_key` are the mailbox's TLS
    client certificate (required by the real MESH, optional for a sandbox); `ca_cert` verifies the server (unset:
    the system's trust store); the inbox is polled every `poll_seconds` and outbound MESH deliveries are
    tracked every `track_seconds`."""

    url: str
    mailbox: str
    password: str
    shared_key: str
    client_cert: Path | None = None
    client_key: Path | None = None
    ca_cert: Path | None = None
    poll_seconds: float = 5.0
    track_seconds: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MeshSettings:
        """ConfigError (naming the variable) when a required setting is missing or a file is unreadable."""
        env = os.environ if env is None else env
        missing = [
            name
            for name in (
                "HANDOVER_MESH_URL",
                "HANDOVER_MESH_MAILBOX",
                "HANDOVER_MESH_PASSWORD",
                "HANDOVER_MESH_SHARED_KEY",
            )
            if not env.get(name)
        ]
        if missing:
            raise ConfigError(f"{', '.join(missing)} must be set to run the MESH bridge")
        cert, key = _file(env, "HANDOVER_MESH_CLIENT_CERT"), _file(env, "HANDOVER_MESH_CLIENT_KEY")
        if (cert is None) != (key is None):
            raise ConfigError("HANDOVER_MESH_CLIENT_CERT and HANDOVER_MESH_CLIENT_KEY must be set together")
        return cls(
            url=env["HANDOVER_MESH_URL"],
            mailbox=env["HANDOVER_MESH_MAILBOX"].upper(),
            password=env["HANDOVER_MESH_PASSWORD"],
            shared_key=env["HANDOVER_MESH_SHARED_KEY"],
            client_cert=cert,
            client_key=key,
            ca_cert=_file(env, "HANDOVER_MESH_CA_CERT"),
            poll_seconds=_positive_number(env, "HANDOVER_MESH_POLL_SECONDS", 5.0),
            track_seconds=_positive_number(env, "HANDOVER_MESH_TRACK_SECONDS", 30.0),
        )


def _file(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name)
    if not raw:
        return None
    path = Path(raw)
    if not path.is_file():
        raise ConfigError(f"{name} must name a readable file, got {raw!r}")
    return path
