"""Profile-driven validation of Handover messages against the conformance resources in fhir_profiles/.

`load_validator()` reads and compiles the profiles once (cached per directory); `Validator.validate(doc)` returns
every issue. Use it after the envelope checks of service/messagefacts.py: errors block (422 profile-violation),
warnings do not.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from service.terminology import PROFILES_DIR
from service.validation.engine import Validator

__all__ = ["Validator", "blocking", "load_validator"]


@cache
def load_validator(directory: Path = PROFILES_DIR) -> Validator:
    """The validator for the profiles under `directory`, compiled on first use and then shared."""
    return Validator.from_directory(directory)


def blocking(issues: list[object]) -> bool:
    """Whether any of the issues is an error (warnings never block a message)."""
    return any(getattr(issue, "severity", "error") == "error" for issue in issues)
