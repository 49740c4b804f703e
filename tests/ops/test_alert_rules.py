"""deploy/prometheus/alerts.yml (the hub's) and hl7-alerts.yml (the HL7 connector's) pass `promtool check rules`
and their unit tests (`promtool test rules`).

promtool comes from Debian's `prometheus` package, which `.ci/run` installs; in CI (CI=true) its absence is a
failure, elsewhere the test is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing in CI: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool not installed (apt-get install prometheus); CI installs it")
    return found


RULE_FILES = [("alerts.yml", "alerts.test.yml", 8), ("hl7-alerts.yml", "hl7-alerts.test.yml", 6)]


@pytest.mark.parametrize(("rules", "unit_tests", "count"), RULE_FILES)
def test_the_alert_rules_are_valid(rules: str, unit_tests: str, count: int) -> None:
    result = subprocess.run(
        [_promtool(), "check", "rules", rules], cwd=DEPLOY, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {count} rules found" in result.stdout


@pytest.mark.parametrize(("rules", "unit_tests", "count"), RULE_FILES)
def test_each_alert_fires_when_it_should_and_not_otherwise(rules: str, unit_tests: str, count: int) -> None:
    result = subprocess.run(
        [_promtool(), "test", "rules", unit_tests], cwd=DEPLOY, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
