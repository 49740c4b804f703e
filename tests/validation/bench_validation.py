"""Benchmark (not a test): validating each example message, beside plain fhir.resources parsing of the same Bundle.

    .venv/bin/python tests/validation/bench_validation.py [ROUNDS]

Prints bundles per second for both and their ratio (validation / parsing); issue 5 asks for at least 0.5.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from service.terminology import PROFILES_DIR
from service.validation import load_validator


def per_second(work: Callable[[], Any], rounds: int) -> float:
    work()  # warm up
    started = time.perf_counter()
    for _ in range(rounds):
        work()
    return rounds / (time.perf_counter() - started)


def main(rounds: int = 300) -> None:
    validator = load_validator()
    print(f"{'message':28} {'validate/s':>11} {'parse/s':>9} {'ratio':>6}")
    for path in sorted((PROFILES_DIR / "examples").glob("Bundle-*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        validated = per_second(lambda doc=doc: validator.validate(doc), rounds)
        parsed = per_second(lambda doc=doc: Bundle.model_validate(doc), rounds)
        print(f"{path.stem.removeprefix('Bundle-'):28} {validated:11.0f} {parsed:9.0f} {validated / parsed:6.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
