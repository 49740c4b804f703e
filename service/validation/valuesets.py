"""ValueSets expanded from fhir_profiles/: which codes a binding allows, without a terminology server.

Only `compose.include` with a `system` and either an enumerated `concept` list or a whole CodeSystem that is
itself in fhir_profiles/ is supported; anything else is refused when the profiles load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ValueSet:
    url: str
    title: str
    codes: frozenset[tuple[str, str]]  # (system, code)

    def contains_code(self, code: object) -> bool:
        """For a `code` element: the code is in the set under any of its systems."""
        return isinstance(code, str) and any(member == code for _, member in self.codes)

    def contains_coding(self, coding: object) -> bool:
        return (
            isinstance(coding, dict)
            and isinstance(coding.get("system"), str)
            and isinstance(coding.get("code"), str)
            and (coding["system"], coding["code"]) in self.codes
        )

    def contains_concept(self, concept: object) -> bool:
        """For a CodeableConcept: at least one of its codings is in the set."""
        if not isinstance(concept, dict) or not isinstance(concept.get("coding"), list):
            return False
        return any(self.contains_coding(coding) for coding in concept["coding"])

    def admits(self, value: object) -> bool:
        """Whether a code, Coding or CodeableConcept value is in the set."""
        if isinstance(value, dict):
            return self.contains_concept(value) if "coding" in value else self.contains_coding(value)
        return self.contains_code(value)


def expand_value_set(doc: dict[str, Any], code_systems: dict[str, frozenset[str]]) -> ValueSet:
    """The codes of a ValueSet resource; raises ValueError for a compose this loader cannot expand."""
    codes: set[tuple[str, str]] = set()
    for include in (doc.get("compose") or {}).get("include") or []:
        system = include.get("system")
        if not isinstance(system, str):
            raise ValueError(f"ValueSet {doc.get('url')}: every include needs a system")
        concepts = include.get("concept")
        if concepts:
            codes.update((system, concept["code"]) for concept in concepts)
        elif system in code_systems:
            codes.update((system, code) for code in code_systems[system])
        else:
            raise ValueError(f"ValueSet {doc.get('url')}: CodeSystem {system} is not in fhir_profiles/")
    return ValueSet(str(doc["url"]), str(doc.get("title") or doc.get("name") or doc["url"]), frozenset(codes))


def canonical_url(reference: str) -> str:
    """A canonical without its `|version` suffix."""
    return reference.split("|", 1)[0]
