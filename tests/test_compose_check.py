"""The parts of `make compose-check` (deploy/compose/) that need no container engine: what the image build is
given to reach the host's package index, and how the time of Patroni's promotion is read from its log. The check
itself runs outside `make test` (it needs dockerd)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from deploy.compose.stack import build_arguments, last_promotion


def test_the_build_gets_the_hosts_pip_index_but_not_its_local_directories(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "https://pypi.example/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "file:///opt/pypi/simple https://more.example/simple")
    monkeypatch.setenv("PIP_TRUSTED_HOST", "pypi.example")
    monkeypatch.setenv("EXTRA_CA_CERTS", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----")
    assert build_arguments("handover-base:bookworm") == {
        "BASE_IMAGE": "handover-base:bookworm",
        "PIP_INDEX_URL": "https://pypi.example/simple",
        "PIP_EXTRA_INDEX_URL": "https://more.example/simple",
        "PIP_TRUSTED_HOST": "pypi.example",
        "EXTRA_CA_CERTS": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
    }


def test_an_index_only_on_this_host_is_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "https://pypi.example/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "file:///opt/pypi/simple")
    monkeypatch.setenv("PIP_TRUSTED_HOST", "pypi.example")
    monkeypatch.setenv("EXTRA_CA_CERTS", "x")
    assert "PIP_EXTRA_INDEX_URL" not in build_arguments("python:3.11-slim")


PROMOTED = "INFO: promoted self to leader by acquiring session lock"


def test_the_promotion_time_is_the_last_promotion_in_dockers_timestamps() -> None:
    log = "\n".join(
        [
            "2026-12-07T15:51:14.733132980Z 2026-12-07 15:51:14,733 INFO: Lock owner: pg1; I am pg2",
            f"2026-12-07T15:52:03.100000000Z 2026-12-07 15:52:03,100 {PROMOTED}",
            f"2026-12-07T15:58:40Z 2026-12-07 15:58:40,000 {PROMOTED}",
            "2026-12-07T15:58:41.5Z 2026-12-07 15:58:41,500 INFO: no action. I am (pg2), the leader with the lock",
        ]
    )
    assert last_promotion(log) == datetime(2026, 12, 7, 15, 58, 40, tzinfo=UTC).timestamp()
    assert last_promotion(log.splitlines()[1]) == datetime(2026, 12, 7, 15, 52, 3, 100000, tzinfo=UTC).timestamp()
    assert last_promotion(log.splitlines()[0]) is None
