"""Who a message is about: one patient, named the same way by every resource in it.

Every NHS number anywhere in the message (a Patient's identifier, a logical reference such as
`subject.identifier`) must be the same, and every Patient resource's date of birth too; otherwise the message
is refused with 422 `patient-mismatch` before anything is stored. Names, addresses and other demographics are
not identity: a patient may move or change name between two messages of one episode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.errors import Code, HandoverError
from service.terminology import NHS_NUMBER_SYSTEM


@dataclass(frozen=True)
class PatientIdentity:
    nhs_number: str
    birth_date: str | None


def read_patient_identity(doc: dict[str, Any]) -> PatientIdentity | None:
    """The one patient a message names (None if it names none), or HandoverError `patient-mismatch`."""
    nhs_numbers: set[str] = set()
    _collect_nhs_numbers(doc, nhs_numbers)
    if len(nhs_numbers) > 1:
        raise HandoverError(
            Code.PATIENT_MISMATCH,
            "The message names more than one NHS number: every resource in a message must be about the same patient",
            "Bundle.entry.resource",
        )
    birth_dates = {
        resource["birthDate"]
        for resource in _resources(doc)
        if resource.get("resourceType") == "Patient" and isinstance(resource.get("birthDate"), str)
    }
    if len(birth_dates) > 1:
        raise HandoverError(
            Code.PATIENT_MISMATCH,
            "The message's Patient resources give different dates of birth: a message must be about one patient",
            "Bundle.entry.resource.birthDate",
        )
    if not nhs_numbers:
        return None
    return PatientIdentity(nhs_numbers.pop(), birth_dates.pop() if birth_dates else None)


def _resources(doc: dict[str, Any]) -> list[dict[str, Any]]:
    entries = doc.get("entry")
    if not isinstance(entries, list):
        return []
    found = [entry.get("resource") for entry in entries if isinstance(entry, dict)]
    return [resource for resource in found if isinstance(resource, dict)]


def _collect_nhs_numbers(node: Any, into: set[str]) -> None:
    """Every value of an identifier in the NHS number system, at any depth (iteratively: depth is bounded by the
    strict parser, but no recursion is needed)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            if current.get("system") == NHS_NUMBER_SYSTEM and isinstance(current.get("value"), str):
                into.add(current["value"])
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)
