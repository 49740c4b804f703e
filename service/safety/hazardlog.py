"""The hazard log (`docs/safety/hazards.yaml`) read into typed records and checked for shape, on the DCB0129 5x5
severity x likelihood matrix.

Severity and likelihood are the categories of the NHS clinical risk management standard (DCB0129 / DCB0160
implementation guidance); the risk they give is 1 (acceptable) to 5 (unacceptable). Each hazard states the risk
before its controls and the residual risk after them; the stated `risk` must be the one the matrix gives, so a
hand edit cannot disagree with the matrix unnoticed. A control names the tests that prove it by their pytest
function names (or `path::name`); a control without tests is a design or deployment measure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SEVERITIES = ("minor", "significant", "considerable", "major", "catastrophic")
LIKELIHOODS = ("very-low", "low", "medium", "high", "very-high")
# Rows: likelihood very-low … very-high; columns: severity minor … catastrophic (DCB0129 guidance matrix).
_MATRIX = (
    (1, 1, 2, 2, 3),
    (1, 2, 2, 3, 4),
    (2, 2, 3, 3, 4),
    (2, 3, 3, 4, 5),
    (3, 4, 4, 5, 5),
)
RISK_NAMES = {
    1: "acceptable",
    2: "acceptable where further reduction is impractical",
    3: "undesirable",
    4: "unacceptable: mandatory control",
    5: "unacceptable",
}
ACCEPTABLE = 1
STATUSES = ("open", "mitigated", "closed", "transferred")
_ID = re.compile(r"HAZ-[0-9]{2}", re.ASCII)
_TEST_NAME = re.compile(r"(?:[A-Za-z0-9_./-]+\.py::)?[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)?", re.ASCII)


def risk_of(severity: str, likelihood: str) -> int:
    """The DCB0129 risk (1 acceptable … 5 unacceptable) of a severity and likelihood category."""
    return _MATRIX[LIKELIHOODS.index(likelihood)][SEVERITIES.index(severity)]


@dataclass(frozen=True)
class Rating:
    severity: str
    likelihood: str

    @property
    def risk(self) -> int:
        return risk_of(self.severity, self.likelihood)

    @property
    def risk_name(self) -> str:
        return RISK_NAMES[self.risk]


@dataclass(frozen=True)
class Control:
    """A measure that reduces a hazard: what it is, and the tests that prove it (none for a procedure)."""

    description: str
    tests: tuple[str, ...]
    kind: str  # "design" (built into Handover) or "deployment" (the deploying trust's, DCB0160)


@dataclass(frozen=True)
class Hazard:
    id: str
    title: str
    cause: str
    effect: str
    initial: Rating
    controls: tuple[Control, ...]
    residual: Rating
    owner: str
    status: str

    @property
    def tests(self) -> tuple[str, ...]:
        return tuple(name for control in self.controls for name in control.tests)

    @property
    def needs_tests(self) -> bool:
        """A hazard whose risk before its controls is above acceptable must have at least one test."""
        return self.initial.risk > ACCEPTABLE


@dataclass(frozen=True)
class HazardLog:
    hazards: tuple[Hazard, ...]

    @property
    def test_names(self) -> tuple[str, ...]:
        """Every test any control names, once each, in the order of the log."""
        return tuple(dict.fromkeys(name for hazard in self.hazards for name in hazard.tests))


class HazardLogError(ValueError):
    """The hazard log is malformed; `problems` lists everything found, each naming the hazard and field."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("the hazard log is not valid:\n  " + "\n  ".join(self.problems))


def load_hazard_log(path: Path) -> HazardLog:
    """Read and check the hazard log; HazardLogError lists every problem at once."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise HazardLogError([f"{path}: cannot be read as YAML ({err.__class__.__name__})"]) from None
    return parse_hazard_log(doc)


def parse_hazard_log(doc: Any) -> HazardLog:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("hazards"), list) or not doc["hazards"]:
        raise HazardLogError(["the document must be a mapping with a non-empty list under `hazards:`"])
    problems: list[str] = []
    hazards: list[Hazard] = []
    seen: set[str] = set()
    for index, entry in enumerate(doc["hazards"]):
        where = f"hazards[{index}]"
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: must be a mapping")
            continue
        hazard = _hazard(entry, where, problems)
        if hazard is None:
            continue
        if hazard.id in seen:
            problems.append(f"{hazard.id}: the id is used twice")
        seen.add(hazard.id)
        hazards.append(hazard)
    if problems:
        raise HazardLogError(problems)
    return HazardLog(tuple(hazards))


def _hazard(entry: Mapping[str, Any], where: str, problems: list[str]) -> Hazard | None:
    before = len(problems)
    hid = entry.get("id")
    if not isinstance(hid, str) or not _ID.fullmatch(hid):
        problems.append(f"{where}: `id` must be HAZ-NN")
        return None
    texts = {key: entry.get(key) for key in ("title", "cause", "effect", "owner")}
    for key, value in texts.items():
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{hid}: `{key}` must be a non-empty text")
    status = entry.get("status")
    if status not in STATUSES:
        problems.append(f"{hid}: `status` must be one of {', '.join(STATUSES)}")
    initial = _rating(entry, hid, "", problems)
    residual_doc = entry.get("residual")
    residual = None
    if isinstance(residual_doc, Mapping):
        residual = _rating(residual_doc, hid, "residual.", problems)
    else:
        problems.append(f"{hid}: `residual` must give severity, likelihood and risk")
    controls = _controls(entry.get("controls"), hid, problems)
    if initial and residual and residual.risk > initial.risk:
        problems.append(f"{hid}: the residual risk is higher than the risk before the controls")
    if len(problems) > before or initial is None or residual is None:
        return None
    return Hazard(
        hid,
        str(texts["title"]),
        str(texts["cause"]),
        str(texts["effect"]),
        initial,
        controls,
        residual,
        str(texts["owner"]),
        str(status),
    )


def _rating(doc: Mapping[str, Any], hid: str, prefix: str, problems: list[str]) -> Rating | None:
    severity, likelihood, stated = doc.get("severity"), doc.get("likelihood"), doc.get("risk")
    ok = True
    if severity not in SEVERITIES:
        problems.append(f"{hid}: `{prefix}severity` must be one of {', '.join(SEVERITIES)}")
        ok = False
    if likelihood not in LIKELIHOODS:
        problems.append(f"{hid}: `{prefix}likelihood` must be one of {', '.join(LIKELIHOODS)}")
        ok = False
    if not ok:
        return None
    rating = Rating(str(severity), str(likelihood))
    if stated != rating.risk:
        problems.append(
            f"{hid}: `{prefix}risk` is {stated!r} but {severity} x {likelihood} is {rating.risk} on the DCB0129 matrix"
        )
    return rating


def _controls(doc: Any, hid: str, problems: list[str]) -> tuple[Control, ...]:
    if not isinstance(doc, list) or not doc:
        problems.append(f"{hid}: `controls` must be a non-empty list")
        return ()
    controls = []
    for index, item in enumerate(doc):
        where = f"{hid}: controls[{index}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("description"), str):
            problems.append(f"{where} must have a `description`")
            continue
        kind = item.get("kind", "design")
        if kind not in ("design", "deployment"):
            problems.append(f"{where}: `kind` must be design or deployment")
        tests = item.get("tests", [])
        if not isinstance(tests, list) or not all(isinstance(t, str) and _TEST_NAME.fullmatch(t) for t in tests):
            problems.append(f"{where}: `tests` must be a list of pytest function names (or path.py::name)")
            continue
        controls.append(Control(item["description"].strip(), tuple(tests), str(kind)))
    return tuple(controls)


def untested_hazards(log: HazardLog) -> list[Hazard]:
    """Hazards whose risk is above acceptable but that no test proves."""
    return [hazard for hazard in log.hazards if hazard.needs_tests and not hazard.tests]
