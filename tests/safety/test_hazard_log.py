"""The hazard log (docs/safety/hazards.yaml) and the check that holds it to its evidence: the log is well formed
on the DCB0129 matrix, names only tests that exist, gives every hazard above acceptable risk a test; and the
check itself fails, in a real pytest run, on a bad hazard log or a skipped test in CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.safety.evidence import FAILED, NOT_RUN, PASSED, SKIPPED, read_junit, resolve
from service.safety.hazardlog import (
    HazardLogError,
    load_hazard_log,
    parse_hazard_log,
    risk_of,
    untested_hazards,
)

ROOT = Path(__file__).resolve().parents[2]
HAZARDS = ROOT / "docs" / "safety" / "hazards.yaml"
ISSUE_14_HAZARDS = [
    "Referral lost",
    "Referral delayed and nobody notices",
    "wrong organisation",
    "Wrong patient",
    "two parties",
    "altered after sending",
    "acted on twice",
    "old message replayed",
    "Acknowledgement never sent",
    "signing key compromised",
    "Clocks wrong",
    "shredded before the recipient read it",
    "hub down",
    "EPR down for days",
    "wrong clinician",
    "cancer clock",
    "governance reader",
]


def test_hazard_log_is_well_formed_and_has_every_hazard_of_the_issue() -> None:
    log = load_hazard_log(HAZARDS)
    ids = [hazard.id for hazard in log.hazards]
    assert ids == [f"HAZ-{n:02d}" for n in range(1, len(ids) + 1)]
    titles = " / ".join(hazard.title for hazard in log.hazards).casefold()
    missing = [words for words in ISSUE_14_HAZARDS if words.casefold() not in titles]
    assert missing == []
    for hazard in log.hazards:
        assert hazard.residual.risk <= hazard.initial.risk
        assert hazard.owner and hazard.status == "mitigated"


def collected_nodeids() -> list[str]:
    """Every test of the whole suite, as a separate pytest collects it (whatever subset this run collected)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return [line for line in result.stdout.splitlines() if "::" in line]


def test_hazard_log_names_only_tests_that_exist() -> None:
    log = load_hazard_log(HAZARDS)
    resolved = resolve(log.test_names, collected_nodeids())
    assert [name for name, found in resolved.items() if not found] == []
    assert untested_hazards(log) == []


def test_risk_matrix_is_dcb0129s() -> None:
    assert risk_of("minor", "very-low") == 1
    assert risk_of("catastrophic", "very-high") == 5
    assert risk_of("catastrophic", "very-low") == 3
    assert risk_of("minor", "very-high") == 3
    assert risk_of("major", "medium") == 3
    assert risk_of("major", "very-low") == 2
    severities = ("minor", "significant", "considerable", "major", "catastrophic")
    likelihoods = ("very-low", "low", "medium", "high", "very-high")
    for s in range(5):
        for lk in range(5):  # never lower for a worse severity or a higher likelihood
            if s < 4:
                assert risk_of(severities[s + 1], likelihoods[lk]) >= risk_of(severities[s], likelihoods[lk])
            if lk < 4:
                assert risk_of(severities[s], likelihoods[lk + 1]) >= risk_of(severities[s], likelihoods[lk])


def hazard(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "HAZ-01",
        "title": "Referral lost",
        "cause": "A crash",
        "effect": "Delay",
        "severity": "major",
        "likelihood": "medium",
        "risk": 3,
        "controls": [{"description": "Commit before 202", "tests": ["test_passes"]}],
        "residual": {"severity": "major", "likelihood": "very-low", "risk": 2},
        "owner": "CSO",
        "status": "mitigated",
    }
    base.update(changes)
    return base


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"risk": 2}, "is 2 but major x medium is 3"),
        ({"id": "HAZ-1"}, "`id` must be HAZ-NN"),
        ({"severity": "bad"}, "`severity` must be one of"),
        ({"residual": {"severity": "catastrophic", "likelihood": "high", "risk": 5}}, "residual risk is higher"),
        ({"controls": []}, "`controls` must be a non-empty list"),
        ({"controls": [{"description": "x", "tests": ["not a test name!"]}]}, "pytest function names"),
        ({"status": "fine"}, "`status` must be one of"),
        ({"effect": ""}, "`effect` must be a non-empty text"),
    ],
)
def test_a_malformed_hazard_is_refused_naming_the_problem(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(HazardLogError) as refused:
        parse_hazard_log({"hazards": [hazard(**changes)]})
    assert any(problem in p for p in refused.value.problems), refused.value.problems


def test_a_duplicate_hazard_id_is_refused() -> None:
    with pytest.raises(HazardLogError, match="used twice"):
        parse_hazard_log({"hazards": [hazard(), hazard()]})


# The check itself, in real pytest runs of a small project with its own hazard log.
CHECKED_TESTS = """
import pytest

def test_passes():
    assert True

def test_skipped():
    pytest.skip("no browser here")
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.delenv("CI", raising=False)
    pytester.makeini("[pytest]\ntestpaths = checks\n")
    (pytester.path / "checks").mkdir()
    (pytester.path / "checks" / "test_things.py").write_text(CHECKED_TESTS)
    return pytester


def run_with(project: pytest.Pytester, *hazards: dict[str, Any], args: tuple[str, ...] = ()) -> pytest.RunResult:
    log = project.path / "hazards.yaml"
    log.write_text(yaml.safe_dump({"hazards": list(hazards)}))
    return project.runpytest_subprocess("-p", "tests.support.hazards_plugin", "--hazard-log", str(log), *args)


def test_check_passes_a_hazard_log_whose_tests_exist_and_pass(project: pytest.Pytester) -> None:
    result = run_with(project, hazard())
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()


def test_check_fails_when_a_hazard_names_a_test_that_does_not_exist(project: pytest.Pytester) -> None:
    result = run_with(project, hazard(controls=[{"description": "x", "tests": ["test_passes", "test_gone"]}]))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*hazard log: FAILED*", "*names test_gone, but no such test was collected*"])
    assert run_with(project, hazard(), args=("checks/test_things.py::test_passes",)).ret == 0, (
        "a subset run cannot say a test is missing"
    )


def test_check_fails_when_a_hazard_above_acceptable_has_no_test(project: pytest.Pytester) -> None:
    untested = hazard(id="HAZ-02", controls=[{"description": "Trusts train staff", "kind": "deployment"}])
    result = run_with(project, hazard(), untested)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*HAZ-02 has risk 3 (above acceptable) and no test proves*"])
    acceptable = hazard(
        id="HAZ-02",
        severity="minor",
        likelihood="low",
        risk=1,
        residual={"severity": "minor", "likelihood": "low", "risk": 1},
        controls=[{"description": "Trusts train staff", "kind": "deployment"}],
    )
    assert run_with(project, hazard(), acceptable).ret == pytest.ExitCode.OK


def test_check_fails_when_a_named_test_is_skipped_in_ci(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    skipped = hazard(controls=[{"description": "x", "tests": ["test_passes", "test_skipped"]}])
    outside_ci = run_with(project, skipped)
    assert outside_ci.ret == pytest.ExitCode.OK
    outside_ci.stdout.fnmatch_lines(["*test_skipped proves a hazard control but was skipped*"])
    monkeypatch.setenv("CI", "true")
    in_ci = run_with(project, skipped)
    assert in_ci.ret == pytest.ExitCode.TESTS_FAILED
    in_ci.stdout.fnmatch_lines(["*hazard log: FAILED*", "*test_skipped proves a hazard control but was skipped in CI*"])
    assert run_with(project, hazard()).ret == pytest.ExitCode.OK, "a skip of a test no hazard names is not our business"


def test_check_fails_on_a_malformed_hazard_log(project: pytest.Pytester) -> None:
    result = run_with(project, hazard(risk=5))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*`risk` is 5 but major x medium is 3*"])


def test_hazard_tests_only_runs_the_named_tests_and_the_junit_report_is_the_evidence(
    project: pytest.Pytester,
) -> None:
    (project.path / "checks" / "test_more.py").write_text("def test_unnamed():\n    assert True\n")
    report = project.path / "junit.xml"
    result = run_with(project, hazard(), args=("--hazard-tests-only", f"--junitxml={report}"))
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, deselected=2)
    evidence = read_junit(report)
    assert evidence.result_of("test_passes") == (PASSED, 1)
    assert evidence.result_of("test_unnamed") == (NOT_RUN, 0)
    assert evidence.ran_at is not None
    everything = project.path / "all.xml"
    project.runpytest_subprocess(f"--junitxml={everything}")
    evidence = read_junit(everything)
    assert evidence.result_of("test_skipped") == (SKIPPED, 1)
    assert evidence.result_of("checks/test_things.py::test_passes") == (PASSED, 1)
    (project.path / "checks" / "test_more.py").write_text("def test_unnamed():\n    assert False\n")
    project.runpytest_subprocess(f"--junitxml={everything}")
    assert read_junit(everything).result_of("test_unnamed") == (FAILED, 1)
