"""The container files, checked without a container engine (Issue 15 item 9, issue 27 item 5). Running them is
`make compose-check` (deploy/compose/check.py), outside `make test`: it builds the images, starts the stack and
fails a Patroni leader over under signed traffic. Here, `docker-compose config` (Debian's docker-compose,
installed by .ci/run) validates docker-compose.yml against the Compose schema, and the settings that make the
stack highly available and local are checked: every `HANDOVER_` setting is one the service reads, both hubs name
both PostgreSQL nodes with target_session_attrs=read-write, only the hubs are published and only on 127.0.0.1,
the base image is a build argument, and Patroni's settings are ones Patroni accepts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SERVICES = {"etcd", "pg1", "pg2", "hub1", "hub2"}
HUBS = ("hub1", "hub2")


def compose_command() -> list[str]:
    found = shutil.which("docker-compose")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("docker-compose is missing in CI: .ci/run installs it")
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    return [found]


def compose_config(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"BASE_IMAGE", "HUB1_PORT", "HUB2_PORT"}}
    return subprocess.run(
        [*compose_command(), "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env={**clean, **env},
    )


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    result = compose_config()
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = yaml.safe_load(result.stdout)
    return parsed


@pytest.fixture(scope="module")
def overridden() -> str:
    """The config with the ports and the base image chosen through the environment, as compose-check does."""
    result = compose_config(HUB1_PORT="18081", HUB2_PORT="18082", BASE_IMAGE="handover-base:bookworm")
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_docker_compose_file_is_valid_and_names_only_settings_the_service_reads(config: dict[str, Any]) -> None:
    assert set(config["services"]) == SERVICES
    settings = set(re.findall(r"\b(HANDOVER_[A-Z_]+)\b", yaml.safe_dump(config)))
    read = set(re.findall(r'"(HANDOVER_[A-Z_]+)"', "".join(p.read_text() for p in (ROOT / "service").rglob("*.py"))))
    assert settings, "the service is configured through HANDOVER_ variables"
    assert settings <= read, f"settings nobody reads: {sorted(settings - read)}"


def test_an_invalid_compose_file_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        (ROOT / "docker-compose.yml").read_text().replace("    image: handover-etcd:dev", "    imgae: x", 1)
    )
    result = subprocess.run(
        [*compose_command(), "-f", str(broken), "config", "-q"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "imgae" in result.stderr


def test_both_hubs_name_both_nodes_and_connect_only_to_the_read_write_one(config: dict[str, Any]) -> None:
    for hub in HUBS:
        dsn = urlsplit(config["services"][hub]["environment"]["HANDOVER_DATABASE_URL"])
        assert dsn.netloc.rpartition("@")[2] == "pg1:5432,pg2:5432", hub
        assert parse_qs(dsn.query) == {"target_session_attrs": ["read-write"]}, hub
        assert config["services"][hub]["restart"] == "unless-stopped", "an orchestrator restarts a hub that dies"


def test_only_the_hubs_are_published_and_only_on_this_machine(config: dict[str, Any], overridden: str) -> None:
    published = {name: service.get("ports", []) for name, service in config["services"].items()}
    assert {name for name, ports in published.items() if ports} == set(HUBS)
    for hub in HUBS:
        assert all(str(port).startswith("127.0.0.1:") for port in published[hub]), published[hub]
    assert "127.0.0.1:18081:8080" in overridden
    assert "127.0.0.1:18082:8080" in overridden


def test_the_base_image_is_a_build_argument(config: dict[str, Any], overridden: str) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    first_from = next(line for line in dockerfile.splitlines() if line.startswith("FROM "))
    assert first_from.startswith("FROM ${BASE_IMAGE} ")
    assert "ARG BASE_IMAGE=python:3.11-slim" in dockerfile.split(first_from)[0]
    for name, service in config["services"].items():
        assert service["build"]["args"]["BASE_IMAGE"] == "python:3.11-slim", name
    assert overridden.count("BASE_IMAGE: handover-base:bookworm") == len(SERVICES)


def test_patroni_runs_synchronous_replication_with_settings_patroni_accepts(config: dict[str, Any]) -> None:
    patroni = yaml.safe_load((ROOT / "deploy/compose/patroni.yml").read_text())
    dcs = patroni["bootstrap"]["dcs"]
    assert dcs["synchronous_mode"] is True
    assert dcs["ttl"] >= 20, "Patroni 4 raises a smaller ttl to 20"
    assert dcs["loop_wait"] + 2 * dcs["retry_timeout"] <= dcs["ttl"], "Patroni's rule for its timings"
    assert patroni["etcd3"]["hosts"] == "etcd:2379"
    for node in ("pg1", "pg2"):
        env = config["services"][node]["environment"]
        # compose-check kills the leader by its service name, which Patroni reports as the member's name
        assert env["PATRONI_NAME"] == node
        assert env["PATRONI_POSTGRESQL_CONNECT_ADDRESS"] == f"{node}:5432"


CERT = "-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----"


def test_the_build_trusts_extra_certificates_only_while_pip_runs(tmp_path: Path) -> None:
    """deploy/docker/with-build-ca: one file per certificate while the command runs, none after, pip pointed at
    the system bundle, empty pip settings dropped, the command's exit status kept."""
    bin_dir, ca_dir = tmp_path / "bin", tmp_path / "ca"
    bin_dir.mkdir()
    ca_dir.mkdir()
    fake = bin_dir / "update-ca-certificates"
    listing = f'$(ls {ca_dir}/handover-build-extra 2>/dev/null | tr "\\n" " ")'
    fake.write_text(f'#!/bin/sh\necho "update $*: {listing}" >> {tmp_path}/log\n')
    fake.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "CA_CERTS_DIR": str(ca_dir),
        "EXTRA_CA_CERTS": CERT.format(body="AAAA") + "\n" + CERT.format(body="BBBB"),
        "PIP_INDEX_URL": "",
        "PIP_TRUSTED_HOST": "pypi.example",
    }
    command = (
        f'cat {ca_dir}/handover-build-extra/2.crt; echo "cert=$PIP_CERT index=${{PIP_INDEX_URL-unset}} '
        'trusted=$PIP_TRUSTED_HOST"; exit 3'
    )
    result = subprocess.run(
        [str(ROOT / "deploy/docker/with-build-ca"), "sh", "-c", command],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout.splitlines() == [
        "-----BEGIN CERTIFICATE-----",
        "BBBB",
        "-----END CERTIFICATE-----",
        "cert=/etc/ssl/certs/ca-certificates.crt index=unset trusted=pypi.example",
    ]
    assert (tmp_path / "log").read_text().splitlines() == ["update : 1.crt 2.crt ", "update --fresh: "]
    assert not (ca_dir / "handover-build-extra").exists()
