"""Issue 26 items 3 and 8: set-up a person can fix (a setting that does not parse, a registry file that is not
there) is said in one sentence on stderr with exit 2, by every command: never a traceback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.hub import ROOT, free_port
from tests.support.processes import HANDOVER


def run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HANDOVER, *args], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("command", [["keys", "show"], ["serve", "--workers", "1"]])
def test_a_missing_registry_is_said_in_words(command: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "network.json"
    result = run(
        command,
        HANDOVER_NETWORK=str(missing),
        HANDOVER_KEYS_DIR=str(tmp_path),
        HANDOVER_LISTEN=f"127.0.0.1:{free_port()}",
        HANDOVER_DATABASE_URL="postgresql://127.0.0.1:1/none",  # the registry is said before any database is tried
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{missing}: cannot read the network registry" in result.stderr
    assert "handover keys init" in result.stderr


def test_a_setting_that_does_not_parse_is_named() -> None:
    result = run(["keys", "show"], HANDOVER_CHECKPOINT_SECONDS="soon")
    assert result.returncode == 2
    assert result.stderr.strip() == "handover: HANDOVER_CHECKPOINT_SECONDS must be a number, got 'soon'"
