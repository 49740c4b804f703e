"""A pytest plugin that holds the hazard log to its evidence during every run (`make test` included).

- A named test that is skipped fails the run when `CI=true` (elsewhere it is reported): a control whose test
  did not run proves nothing.
- When the whole suite is collected, a name that matches no test, or a hazard above acceptable risk that names
  no test at all, fails the run.
- `--hazard-tests-only` deselects every test the hazard log does not name (`make safety` runs just those).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.safety.evidence import names_match, resolve
from service.safety.hazardlog import HazardLog, HazardLogError, load_hazard_log, untested_hazards

_LOG = pytest.StashKey[HazardLog]()
_PROBLEMS = pytest.StashKey[list[str]]()
_NAMED = pytest.StashKey[dict[str, str]]()  # nodeid → first name it answers to
_SKIPPED = pytest.StashKey[set[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hazards", "clinical safety hazard log")
    group.addoption("--hazard-log", default=None, help="hazard log (default: docs/safety/hazards.yaml)")
    group.addoption("--hazard-tests-only", action="store_true", help="run only the tests the hazard log names")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_PROBLEMS] = []
    config.stash[_SKIPPED] = set()
    config.stash[_NAMED] = {}
    path = Path(config.getoption("--hazard-log") or config.rootpath / "docs" / "safety" / "hazards.yaml")
    if not path.exists():
        return
    try:
        config.stash[_LOG] = load_hazard_log(path)
    except HazardLogError as err:
        config.stash[_PROBLEMS].extend(err.problems)


def _whole_suite(config: pytest.Config) -> bool:
    """Only a run that collects every test can say a test is missing."""
    if config.option.keyword or config.option.markexpr or config.getoption("deselect", None):
        return False
    roots = [config.rootpath / p for p in config.getini("testpaths")] or [config.rootpath]
    given = [Path(arg.split("::", 1)[0]).resolve() for arg in config.args]
    return sorted(given) == sorted(root.resolve() for root in roots)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    log = config.stash.get(_LOG, None)
    if log is None:
        return
    named = config.stash[_NAMED]
    for item in items:
        name = next((n for n in log.test_names if names_match(n, item.nodeid)), None)
        if name is not None:
            named[item.nodeid] = name
    problems = config.stash[_PROBLEMS]
    if _whole_suite(config):
        for name, found in resolve(log.test_names, [item.nodeid for item in items]).items():
            if not found:
                problems.append(f"the hazard log names {name}, but no such test was collected")
        problems.extend(
            f"{hazard.id} has risk {hazard.initial.risk} (above acceptable) and no test proves any of its controls"
            for hazard in untested_hazards(log)
        )
    if config.getoption("--hazard-tests-only"):
        keep = [item for item in items if item.nodeid in named]
        config.hook.pytest_deselected(items=[item for item in items if item.nodeid not in named])
        items[:] = keep


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    if report.skipped and item.nodeid in item.config.stash[_NAMED]:
        item.config.stash[_SKIPPED].add(item.nodeid)
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    problems = list(config.stash[_PROBLEMS])
    skipped = sorted(config.stash[_SKIPPED])
    if skipped and _in_ci():
        problems.extend(f"{nodeid} proves a hazard control but was skipped in CI" for nodeid in skipped)
    config.stash[_PROBLEMS] = problems
    if problems and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    problems = config.stash.get(_PROBLEMS, [])
    skipped = sorted(config.stash.get(_SKIPPED, set()))
    if problems:
        terminalreporter.section("hazard log: FAILED", red=True)
        for problem in problems:
            terminalreporter.line(problem, red=True)
    elif skipped:
        terminalreporter.section("hazard log", yellow=True)
        for nodeid in skipped:
            terminalreporter.line(f"{nodeid} proves a hazard control but was skipped (a failure under CI=true)")
