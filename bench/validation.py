"""Benchmark of profile validation (issue 5 item 6): validating the example referral message, in bundles/s, next to
plain fhir.resources parsing (R4B `Bundle.model_validate`) of the same Bundle measured in the same run.

    .venv/bin/python bench/validation.py [--rounds 300] [--repetitions 7] [--all]

Each repetition times `rounds` validations, then `rounds` parses (after a warm-up of both); the table shows the
median and best rate over the repetitions and the ratio of the medians (validation / parsing). The validator must
not be the bottleneck of the pipeline: aim for a ratio of at least 0.5. The exit status is non-zero only when
something fails (an example does not parse or does not conform), never because of speed. `--all` adds every other
valid example message.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.terminology import PROFILES_DIR  # noqa: E402
from service.validation import blocking, load_validator  # noqa: E402

REFERRAL = PROFILES_DIR / "examples" / "Bundle-referral.json"
TARGET_RATIO = 0.5


def rate(work: Callable[[], Any], rounds: int) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        work()
    seconds = time.perf_counter() - started
    return rounds / seconds if seconds > 0 else float("inf")


def measure(doc: dict[str, Any], rounds: int, repetitions: int) -> tuple[list[float], list[float]]:
    """Bundles/s of validation and of parsing, one figure of each per repetition (interleaved)."""
    validator = load_validator()
    for _ in range(max(10, rounds // 10)):  # warm-up: imports, caches, the allocator
        validator.validate(doc)
        Bundle.model_validate(doc)
    validated: list[float] = []
    parsed: list[float] = []
    for _ in range(repetitions):
        validated.append(rate(lambda: validator.validate(doc), rounds))
        parsed.append(rate(lambda: Bundle.model_validate(doc), rounds))
    return validated, parsed


def check(path: Path) -> dict[str, Any]:
    """The example, after checking it parses with fhir.resources and conforms (else the run is meaningless)."""
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    Bundle.model_validate(doc)
    issues = load_validator().validate(doc)
    if blocking(list(issues)):
        texts = "; ".join(f"{issue.expression}: {issue.text}" for issue in issues)
        raise ValueError(f"{path.name} does not conform: {texts}")
    return doc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=300, help="bundles per timed repetition (default 300)")
    parser.add_argument("--repetitions", type=int, default=7, help="timed repetitions (default 7)")
    parser.add_argument("--all", action="store_true", help="also every other valid example message")
    arguments = parser.parse_args()
    console = Console()
    paths = [REFERRAL]
    if arguments.all:
        paths += [path for path in sorted(REFERRAL.parent.glob("Bundle-*.json")) if path != REFERRAL]
    table = Table(title=f"Validation vs fhir.resources R4B parsing ({arguments.repetitions} x {arguments.rounds})")
    table.add_column("message", no_wrap=True)
    for heading in ("validate/s", "best", "parse/s", "best", "ratio"):
        table.add_column(heading, justify="right")
    try:
        for path in paths:
            doc = check(path)
            validated, parsed = measure(doc, arguments.rounds, arguments.repetitions)
            ratio = statistics.median(validated) / statistics.median(parsed)
            style = "green" if ratio >= TARGET_RATIO else "red"
            table.add_row(
                path.stem.removeprefix("Bundle-"),
                f"{statistics.median(validated):,.0f}",
                f"{max(validated):,.0f}",
                f"{statistics.median(parsed):,.0f}",
                f"{max(parsed):,.0f}",
                f"[{style}]{ratio:.2f}[/{style}]",
            )
    except Exception as exc:  # noqa: BLE001 - report any failure as the script's result, with a non-zero status
        console.print(table)
        console.print(f"[red]benchmark failed: {type(exc).__name__}: {exc}[/red]")
        return 1
    console.print(table)
    console.print("bundles/s: median over the repetitions, and the best one")
    console.print(f"ratio = validation / parsing, of the medians; target at least {TARGET_RATIO}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
