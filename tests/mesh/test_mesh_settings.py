"""The MESH settings, workflow IDs and registry entries (CONTRACT.md section 8), and the command's refusal to start
half-configured."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from service.delivery.mesh import mesh_recipients
from service.errors import ConfigError
from service.identity.registry import RegistryError, registry_from_document
from service.mesh.settings import MeshSettings, workflow_id
from tests.support.processes import HANDOVER

ROOT = Path(__file__).resolve().parents[2]
FULL = {
    "HANDOVER_MESH_URL": "https://mesh.example.invalid",
    "HANDOVER_MESH_MAILBOX": "x26hub01",
    "HANDOVER_MESH_PASSWORD": "secret",
    "HANDOVER_MESH_SHARED_KEY": "shared",
}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ("referral", "HANDOVER_REFERRAL"),
        ("transfer-of-care", "HANDOVER_TRANSFER_OF_CARE"),
        ("referral-outcome", "HANDOVER_REFERRAL_OUTCOME"),
        ("discharge-summary", "HANDOVER_DISCHARGE_SUMMARY"),
    ],
)
def test_workflow_ids_follow_the_event_codes(event: str, expected: str) -> None:
    assert workflow_id(event) == expected


def test_settings_from_the_environment() -> None:
    settings = MeshSettings.from_env({**FULL, "HANDOVER_MESH_POLL_SECONDS": "2"})
    assert (settings.url, settings.mailbox, settings.poll_seconds, settings.client_cert) == (
        "https://mesh.example.invalid",
        "X26HUB01",
        2.0,
        None,
    )


@pytest.mark.parametrize("missing", sorted(FULL))
def test_each_required_setting_is_named_when_missing(missing: str) -> None:
    env = {name: value for name, value in FULL.items() if name != missing}
    with pytest.raises(ConfigError, match=missing):
        MeshSettings.from_env(env)


def test_a_client_certificate_needs_its_key(tmp_path: Path) -> None:
    cert = tmp_path / "client.pem"
    cert.write_text("not checked here")
    with pytest.raises(ConfigError, match="HANDOVER_MESH_CLIENT_KEY"):
        MeshSettings.from_env({**FULL, "HANDOVER_MESH_CLIENT_CERT": str(cert)})
    with pytest.raises(ConfigError, match="readable file"):
        MeshSettings.from_env({**FULL, "HANDOVER_MESH_CLIENT_CERT": str(tmp_path / "absent.pem")})


def _network(**rm1: object) -> dict[str, object]:
    doc = json.loads((ROOT / "keys" / "network.json").read_text())
    doc["participants"]["RM1"].update(rm1)
    return doc


def test_a_registry_entry_may_name_a_mesh_mailbox() -> None:
    registry = registry_from_document(_network(mesh_mailbox="RM1MESH01"))
    assert registry.participants["RM1"].mesh_mailbox == "RM1MESH01"
    assert mesh_recipients(registry) == {"RM1": "RM1MESH01"}


def test_a_participant_with_a_push_endpoint_is_pushed_to_not_sent_by_mesh() -> None:
    registry = registry_from_document(_network(mesh_mailbox="RM1MESH01", endpoint="https://rm1.example.invalid"))
    assert mesh_recipients(registry) == {}


@pytest.mark.parametrize("bad", ["", "rm1 mesh", 42, "X" * 21])
def test_a_malformed_mesh_mailbox_is_refused(bad: object) -> None:
    with pytest.raises(RegistryError, match="mesh_mailbox"):
        registry_from_document(_network(mesh_mailbox=bad))


def test_the_bridge_refuses_to_start_without_its_settings() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOVER_MESH_")}
    done = subprocess.run([HANDOVER, "mesh-bridge"], env=env, capture_output=True, timeout=60, check=False)
    assert done.returncode == 2
    assert b"HANDOVER_MESH_URL" in done.stderr
