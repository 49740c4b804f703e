"""The evidence behind each control: which collected tests a name in the hazard log means, and what they did in
the last run (a pytest JUnit XML report).

A name is a pytest function (or test class) name such as `test_s8_changed_payload_refused`, matching every test
of that name in any file and every parametrisation of it; `tests/x/test_y.py::test_z` narrows it to one file.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

PASSED, FAILED, SKIPPED, NOT_RUN = "passed", "failed", "skipped", "not run"


def _without_parameters(nodeid: str) -> str:
    return nodeid.split("[", 1)[0]


def names_match(name: str, nodeid: str) -> bool:
    """Whether the hazard log's `name` means the collected test `nodeid`."""
    bare = _without_parameters(nodeid)
    if "::" in name and ".py" in name:
        return bare == name or bare.startswith(name + "::")
    return name in bare.split("::")[1:]


def resolve(names: Iterable[str], nodeids: Iterable[str]) -> dict[str, list[str]]:
    """Each name and the node ids it means (an empty list: the test does not exist)."""
    collected = list(nodeids)
    return {name: [nodeid for nodeid in collected if names_match(name, nodeid)] for name in names}


@dataclass(frozen=True)
class RunReport:
    """Outcome per node id of one pytest run, and when it ran."""

    outcomes: Mapping[str, str]
    ran_at: datetime | None
    source: str

    def result_of(self, name: str) -> tuple[str, int]:
        """The combined outcome of every test a name means, and how many ran: failed beats skipped beats passed."""
        found = [outcome for nodeid, outcome in self.outcomes.items() if names_match(name, nodeid)]
        if not found:
            return NOT_RUN, 0
        for worst in (FAILED, SKIPPED):
            if worst in found:
                return worst, len(found)
        return PASSED, len(found)


def read_junit(path: Path) -> RunReport:
    """A RunReport from pytest's `--junitxml` output (node ids rebuilt from classname and name)."""
    root = ET.parse(path).getroot()  # noqa: S314 - a file our own pytest run wrote
    outcomes: dict[str, str] = {}
    ran_at: datetime | None = None
    for suite in root.iter("testsuite"):
        stamp = suite.get("timestamp")
        if stamp and ran_at is None:
            ran_at = datetime.fromisoformat(stamp)
        for case in suite.iter("testcase"):
            outcomes[_nodeid(case.get("classname", ""), case.get("name", ""))] = _outcome(case)
    return RunReport(outcomes, ran_at, str(path))


def _nodeid(classname: str, name: str) -> str:
    """pytest writes `tests.http.test_x` (module) or `tests.http.test_x.TestClass` and the test name."""
    parts = classname.split(".")
    cut = next((i for i in range(len(parts), 0, -1) if parts[i - 1].startswith("test")), len(parts))
    return "::".join(["/".join(parts[:cut]) + ".py", *parts[cut:], name])


def _outcome(case: ET.Element) -> str:
    tags = {child.tag for child in case}
    if tags & {"failure", "error"}:
        return FAILED
    if "skipped" in tags:
        return SKIPPED
    return PASSED
