"""The roles a signed-in member of staff may hold on the staff pages, read from an ID token's role claim.

`governance` (audits handovers), `ops` (keeps deliveries flowing), `smdt-coordinator` (the centre's SMDT
coordinator), and `trust:<ODS>` (a trust's staff, who see only their trust's episodes). A claim may be a
string or a list; the first value that is a known role wins. A trust role must name a network participant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

GOVERNANCE = "governance"
OPS = "ops"
SMDT_COORDINATOR = "smdt-coordinator"
TRUST_PREFIX = "trust:"
STAFF_ROLES = (GOVERNANCE, OPS, SMDT_COORDINATOR)


def trust_ods(role: str) -> str | None:
    """The ODS code of a `trust:<ODS>` role, else None."""
    return role.removeprefix(TRUST_PREFIX) if role.startswith(TRUST_PREFIX) and len(role) > len(TRUST_PREFIX) else None


def role_from_claim(claim: Any, is_participant: Callable[[str], bool]) -> str | None:
    """The first recognised role in `claim` (a string or list of strings), or None."""
    values = [claim] if isinstance(claim, str) else claim if isinstance(claim, list) else []
    for value in values:
        if not isinstance(value, str):
            continue
        if value in STAFF_ROLES:
            return value
        ods = trust_ods(value)
        if ods is not None and is_participant(ods):
            return value
    return None
