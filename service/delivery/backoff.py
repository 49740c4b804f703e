"""When to try a failed push again: full-jitter exponential backoff (1 s doubling to a 15 min cap), never sooner
than the recipient's ``Retry-After``. Pure functions."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

BASE = timedelta(seconds=1)
CAP = timedelta(minutes=15)
MAX_RETRY_AFTER = timedelta(hours=6)
"""A longer Retry-After is taken as this: a recipient cannot park a message for days by accident."""


def backoff_ceiling(attempt: int, *, base: timedelta = BASE, cap: timedelta = CAP) -> timedelta:
    """The longest wait after the `attempt`-th failed attempt (1-based): min(cap, base · 2^(attempt-1))."""
    exponent = min(max(attempt, 1) - 1, 40)
    ceiling: timedelta = min(cap, base * (1 << exponent))
    return ceiling


def retry_delay(
    attempt: int,
    *,
    retry_after: timedelta | None = None,
    rng: random.Random | None = None,
    base: timedelta = BASE,
    cap: timedelta = CAP,
) -> timedelta:
    """Full jitter: uniform in [0, backoff_ceiling(attempt)], but at least `retry_after` when the recipient gave one."""
    ceiling = backoff_ceiling(attempt, base=base, cap=cap).total_seconds()
    delay = timedelta(seconds=(rng or random).uniform(0, ceiling))  # jitter, not a secret
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """``Retry-After`` as a wait from `now`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3); None if absent
    or unreadable; a date in the past is no wait."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return timedelta(seconds=min(int(value), int(MAX_RETRY_AFTER.total_seconds())))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" or an obsolete zone: HTTP dates are always GMT
        return None
    return max(when - now, timedelta(0))
