"""The one vocabulary of staff roles (`StaffRole`), for bearer tokens and the staff pages alike, and how the pages
read a role from an ID token's role claim.

`governance` (audits handovers), `ops` (keeps deliveries flowing), `smdt-coordinator` (the centre's SMDT
coordinator), and `trust:<ODS>` (a trust's staff, who see only their trust's episodes). A claim may be a
string or a list; values that are not roles of ours are ignored, and a trust role must name a network
participant. A claim naming two or more different roles of ours is ambiguous and refused (`AmbiguousRole`):
no precedence is guessed, since order in a claim means nothing to most providers and the wrong guess would
show one person another role's pages. The same role named twice is that role.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any


class StaffRole(StrEnum):
    """A staff role. A member compares equal to its string, so a page's role (a `str`) is checked against these."""

    GOVERNANCE = "governance"
    OPS = "ops"
    SMDT_COORDINATOR = "smdt-coordinator"


GOVERNANCE = StaffRole.GOVERNANCE
OPS = StaffRole.OPS
SMDT_COORDINATOR = StaffRole.SMDT_COORDINATOR
STAFF_ROLES = tuple(StaffRole)
BEARER_ROLES = frozenset({GOVERNANCE, OPS})  # the roles a staff bearer token may carry (CONTRACT.md section 6)
TRUST_PREFIX = "trust:"


def trust_ods(role: str) -> str | None:
    """The ODS code of a `trust:<ODS>` role, else None."""
    return role.removeprefix(TRUST_PREFIX) if role.startswith(TRUST_PREFIX) and len(role) > len(TRUST_PREFIX) else None


class AmbiguousRole(ValueError):  # noqa: N818 - a refusal, named for what it says
    """The claim names more than one of our roles."""

    def __init__(self, roles: list[str]) -> None:
        super().__init__(f"{len(roles)} roles in the claim")
        self.roles = roles


def role_from_claim(claim: Any, is_participant: Callable[[str], bool]) -> str | None:
    """The one recognised role in `claim` (a string or list of strings), None if there is none; AmbiguousRole if
    it names several different ones."""
    values = [claim] if isinstance(claim, str) else claim if isinstance(claim, list) else []
    found: list[str] = []
    for value in values:
        if not isinstance(value, str) or value in found:
            continue
        ods = trust_ods(value)
        if value in STAFF_ROLES or (ods is not None and is_participant(ods)):
            found.append(value)
    if len(found) > 1:
        raise AmbiguousRole(found)
    return found[0] if found else None
