"""How the staff pages write dates, times, durations and organisations (Jinja filters).

Times are shown in UK local time (Europe/London), as people on the wards read them: `date` → "28 November
2026", `datetime` → "28 November 2026, 09:30", `org` → "Cambridge University Hospitals … (RGT)".
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from service.registry import Participant

UK = ZoneInfo("Europe/London")


def format_date(value: date | datetime | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(UK).date()
    return f"{value.day} {value:%B %Y}"


def format_datetime(value: datetime | None) -> str:
    if value is None:
        return ""
    local = value.astimezone(UK)
    return f"{local.day} {local:%B %Y}, {local:%H:%M}"


def format_duration(value: timedelta) -> str:
    """ "3 days", "5 hours", "40 minutes": the largest whole unit."""
    seconds = abs(int(value.total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return "less than a minute"


def organisation_formatter(lookup: Callable[[str], Participant | None]) -> Callable[[str | None], str]:
    """The `org` filter: the registry's name with the ODS code beside it (a former member says so); the hub by
    name; a code the registry does not list says that, never the bare code alone."""

    def org(ods: str | None) -> str:
        if not ods:
            return ""
        if ods == "hub":
            return "Handover hub"
        found = lookup(ods)
        if found is None:
            return f"Organisation not in the registry ({ods})"
        return f"{found.name} ({ods})" if found.active else f"{found.name} ({ods}), no longer in the network"

    return org


def format_nhs_number(value: str | None) -> str:
    """ "999 123 4567": the NHS number in its 3-3-4 groups (anything else unchanged)."""
    digits = (value or "").replace(" ", "")
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}" if len(digits) == 10 and digits.isdigit() else (value or "")


def age_on(born: date | None, today: date) -> int | None:
    """Whole years from `born` to `today` (None without a date of birth)."""
    if born is None:
        return None
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))
