"""How the staff pages write dates, times, durations and organisations (Jinja filters).

Times are shown in UK local time (Europe/London), as people on the wards read them: `date` → "28 November
2026", `datetime` → "28 November 2026, 09:30", `org` → "Cambridge University Hospitals … (RGT)".
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from service.identity.registry import Participant

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
    """The `org` filter: the registry's name with the ODS code, or the bare code if it is not listed."""

    def org(ods: str | None) -> str:
        if not ods:
            return ""
        found = lookup(ods)
        return f"{found.name} ({ods})" if found is not None else ods

    return org
