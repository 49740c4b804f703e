"""`python -m service.safety [--junit REPORT] [--hazards FILE] OUT_DIR`: render the hazard log page and the
clinical safety case report into OUT_DIR (`make safety` runs the named tests first and writes docs/safety/)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from service.safety.evidence import read_junit
from service.safety.hazardlog import HazardLogError, load_hazard_log
from service.safety.report import HAZARD_LOG, build_safety_case, write_documents


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.safety", description=__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--hazards", type=Path, default=HAZARD_LOG)
    parser.add_argument("--junit", type=Path, help="pytest --junitxml report holding the tests' last results")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    try:
        log = load_hazard_log(args.hazards)
    except HazardLogError as err:
        console.print(f"[red]{err}[/red]")
        return 1
    report = read_junit(args.junit) if args.junit and args.junit.exists() else None
    if report is None:
        console.print("[yellow]no test report: every test is shown as not run[/yellow]")
    case = build_safety_case(log, report)
    for path in write_documents(case, args.out_dir):
        console.print(f"wrote {path}")
    for item in case.hazards:
        if item.results and item.verdict != "proven":
            console.print(f"[red]{item.hazard.id} {item.hazard.title}: {item.verdict}[/red]")
    return 0 if case.all_proven else 1


if __name__ == "__main__":
    sys.exit(main())
