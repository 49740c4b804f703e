"""`make safety`'s documents: the hazard log page and the clinical safety case report, rendered from a hazard
log and a real pytest JUnit report, readable without code, escaping what they quote, failing when the evidence
does not hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.safety.evidence import read_junit
from service.safety.hazardlog import load_hazard_log
from service.safety.report import (
    HAZARD_LOG,
    build_safety_case,
    hazard_log_fragment,
    hazard_log_page,
    safety_case_markdown,
)

ROOT = Path(__file__).resolve().parents[2]
PROJECT_TESTS = """
def test_holds():
    assert True

def test_breaks():
    assert False
"""


def hazard(hid: str, title: str, tests: list[str]) -> dict[str, Any]:
    return {
        "id": hid,
        "title": title,
        "cause": "A <script>alert(1)</script> cause",
        "effect": "Delay | harm",
        "severity": "major",
        "likelihood": "medium",
        "risk": 3,
        "controls": [
            {"description": "A built-in control", "tests": tests},
            {"description": "Trusts read their alerts", "kind": "deployment"},
        ],
        "residual": {"severity": "major", "likelihood": "very-low", "risk": 2},
        "owner": "Manufacturer CSO",
        "status": "mitigated",
    }


def render(pytester: pytest.Pytester, tests: list[str]) -> tuple[int, Path, str]:
    """Run a small project's tests into a JUnit report, then `python -m service.safety` over it."""
    (pytester.path / "test_project.py").write_text(PROJECT_TESTS)
    junit = pytester.path / "junit.xml"
    pytester.runpytest_subprocess(f"--junitxml={junit}")
    log = pytester.path / "hazards.yaml"
    log.write_text(yaml.safe_dump({"hazards": [hazard("HAZ-01", "Referral <lost> | delayed", tests)]}))
    out = pytester.path / "docs"
    done = subprocess.run(
        [sys.executable, "-m", "service.safety", "--hazards", str(log), "--junit", str(junit), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    return done.returncode, out, done.stderr


def test_documents_show_each_tests_last_result_and_the_dcb0160_duties(pytester: pytest.Pytester) -> None:
    status, out, _ = render(pytester, ["test_holds"])
    assert status == 0
    page = (out / "hazard-log.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "http://" not in page and "https://" not in page, "standalone, no scripts"
    assert "Referral &lt;lost&gt; | delayed" in page and "&lt;script&gt;" in page, "quoted text is escaped"
    assert 'test_holds</code>: <span class="outcome-passed">passed' in page
    report = (out / "safety-case.md").read_text()
    for heading in ("## 1. Scope", "## 2. Intended use", "## 4. Hazards", "## 6. Evidence", "(DCB0160)"):
        assert heading in report
    assert "| `test_holds` | passed | 1 |" in report
    assert "Referral <lost> \\| delayed |" in report, "table cells escape the pipe"
    assert "| RGT | Cambridge University Hospitals" in report, "the network's participants"
    assert "Trusts read their alerts" in report


def test_documents_flag_a_failed_or_missing_test_and_make_safety_fails(pytester: pytest.Pytester) -> None:
    status, out, stderr = render(pytester, ["test_holds", "test_breaks", "test_never_written"])
    assert status == 1
    assert "HAZ-01" in stderr
    report = (out / "safety-case.md").read_text()
    assert "| `test_breaks` | failed | 1 |" in report
    assert "| `test_never_written` | not run | 0 |" in report
    assert "not every control's tests passed" in report
    assert "a test FAILED" in (out / "hazard-log.html").read_text()


def test_the_real_hazard_log_renders_every_hazard() -> None:
    case = build_safety_case(load_hazard_log(HAZARD_LOG), None)
    fragment = hazard_log_fragment(case)
    for item in case.hazards:
        assert f'id="{item.hazard.id}"' in fragment
    assert "<html" not in fragment, "a fragment for the staff pages' layout"
    assert hazard_log_page(case).count("<html") == 1
    assert "HAZ-21" in safety_case_markdown(case)


def test_junit_of_an_empty_run_reads_as_nothing_run(tmp_path: Path) -> None:
    empty = tmp_path / "junit.xml"
    empty.write_text('<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="0"/></testsuites>')
    assert read_junit(empty).result_of("test_anything") == ("not run", 0)
