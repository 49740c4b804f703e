"""The documents a clinical safety officer reviews, rendered from the hazard log and the last test run:
`hazard-log.html` (a standalone page in plain NHS style) and `safety-case.md` (the DCB0129 clinical safety case
report, with what a deploying organisation must do under DCB0160).

`hazard_log_fragment` is the page body alone, for the staff web pages (`/ui/safety`) to place in their layout.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from service.safety.evidence import FAILED, NOT_RUN, PASSED, SKIPPED, RunReport, read_junit
from service.safety.hazardlog import (
    ACCEPTABLE,
    LIKELIHOODS,
    RISK_NAMES,
    SEVERITIES,
    Hazard,
    HazardLog,
    load_hazard_log,
    risk_of,
)

ROOT = Path(__file__).resolve().parents[2]
HAZARD_LOG = ROOT / "docs" / "safety" / "hazards.yaml"
NETWORK = ROOT / "keys" / "network.json"
_TEMPLATES = Path(__file__).resolve().parent / "templates"


NO_EVIDENCE = "no test run"


@dataclass(frozen=True)
class TestResult:
    name: str
    outcome: str  # passed, failed, skipped, not run
    count: int  # how many collected tests (files, parametrisations) the name stands for


@dataclass(frozen=True)
class HazardEvidence:
    hazard: Hazard
    results: Mapping[str, TestResult]

    @property
    def verdict(self) -> str:
        """`proven` when every named test passed; otherwise what went wrong, worst first."""
        outcomes = {result.outcome for result in self.results.values()}
        if not self.results:
            return "no tests (procedural controls only)"
        for worst, text in (
            (FAILED, "a test FAILED"),
            (NOT_RUN, "a test did not run"),
            (SKIPPED, "a test was skipped"),
        ):
            if worst in outcomes:
                return text
        return "proven"

    @property
    def passed(self) -> int:
        return sum(1 for result in self.results.values() if result.outcome == PASSED)


@dataclass(frozen=True)
class SafetyCase:
    log: HazardLog
    hazards: tuple[HazardEvidence, ...]
    evidence_source: str
    ran_at: datetime | None
    generated_at: datetime
    participants: tuple[tuple[str, str, str], ...]  # (ODS, name, role) of the current network

    @property
    def has_evidence(self) -> bool:
        """False when no test run's results were found (the demo, a fresh checkout): the page then says what it
        shows instead of reporting every test as not run."""
        return self.evidence_source != NO_EVIDENCE

    @property
    def all_proven(self) -> bool:
        return all(item.verdict == "proven" for item in self.hazards if item.results)

    @property
    def tests(self) -> list[TestResult]:
        seen: dict[str, TestResult] = {}
        for item in self.hazards:
            seen.update(item.results)
        return list(seen.values())


def build_safety_case(log: HazardLog, report: RunReport | None, *, network: Path = NETWORK) -> SafetyCase:
    hazards = []
    for hazard in log.hazards:
        results = {}
        for name in hazard.tests:
            outcome, count = report.result_of(name) if report is not None else (NOT_RUN, 0)
            results[name] = TestResult(name, outcome, count)
        hazards.append(HazardEvidence(hazard, results))
    return SafetyCase(
        log,
        tuple(hazards),
        report.source if report is not None else NO_EVIDENCE,
        report.ran_at if report is not None else None,
        datetime.now(UTC),
        _participants(network),
    )


def _participants(network: Path) -> tuple[tuple[str, str, str], ...]:
    try:
        doc = json.loads(network.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ()
    return tuple(
        (ods, str(entry.get("name", ods)), str(entry.get("role", "")))
        for ods, entry in doc.get("participants", {}).items()
        if isinstance(entry, dict) and entry.get("active", True)
    )


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"]),  # the Markdown quotes our own hazard log, unescaped
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["cell"] = lambda text: str(text).replace("|", "\\|").replace("\n", " ")
    env.filters["when"] = lambda moment: moment.strftime("%d %B %Y, %H:%M UTC") if moment else "unknown"
    env.globals.update(
        severities=SEVERITIES,
        likelihoods=LIKELIHOODS,
        risk_of=risk_of,
        risk_names=RISK_NAMES,
        acceptable=ACCEPTABLE,
    )
    return env


def hazard_log_fragment(case: SafetyCase) -> str:
    """The hazard log and its evidence as an HTML fragment (NHS.UK frontend classes), for any page layout."""
    return _environment().get_template("hazard-log-body.html").render(case=case)


def hazard_log_page(case: SafetyCase) -> str:
    """The standalone hazard log page: no scripts, no external resources."""
    return _environment().get_template("hazard-log.html").render(case=case, body=hazard_log_fragment(case))


def safety_case_markdown(case: SafetyCase) -> str:
    return _environment().get_template("safety-case.md").render(case=case)


def write_documents(case: SafetyCase, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (("hazard-log.html", hazard_log_page(case)), ("safety-case.md", safety_case_markdown(case))):
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def current_safety_case(junit: Path | None) -> SafetyCase:
    """The checked-in hazard log with the results of the report at `junit` (e.g. var/safety/junit.xml from the
    last `make safety`), if there is one: what `/ui/safety` shows."""
    report = read_junit(junit) if junit is not None and junit.exists() else None
    return build_safety_case(load_hazard_log(HAZARD_LOG), report)


def template_context(case: SafetyCase) -> dict[str, Any]:
    """What a staff page template needs to show the hazard log in its own layout."""
    fragment = hazard_log_fragment(case)  # rendered by an autoescaping template
    return {"case": case, "hazard_log": Markup(fragment)}  # noqa: S704
