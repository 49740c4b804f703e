"""Tuning of the push relay, built by the application from `service.config.Settings`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from service.delivery.backoff import BASE, CAP


@dataclass(frozen=True)
class RelaySettings:
    """`timeout_seconds` bounds one push; `concurrency` pushes per recipient at once (per relay process); a lease
    lasts `lease` (longer than a push plus recording it); idle queues look for due work every `poll_seconds`;
    a delivery not done `window` after acceptance is dead-lettered (checked every `sweep_seconds`); on stop,
    pushes in flight get `shutdown_grace_seconds` before they are cancelled and their jobs released;
    `failure_threshold` failures in a row open a recipient's circuit for `circuit_cooldown` (doubling);
    retries back off from `backoff_base` to `backoff_cap` with full jitter."""

    timeout_seconds: float = 30.0
    concurrency: int = 4
    lease: timedelta = timedelta(minutes=2)
    poll_seconds: float = 1.0
    window: timedelta = timedelta(days=5)
    sweep_seconds: float = 30.0
    shutdown_grace_seconds: float = 10.0
    failure_threshold: int = 5
    circuit_cooldown: timedelta = timedelta(seconds=5)
    backoff_base: timedelta = BASE
    backoff_cap: timedelta = CAP


def relay_lease(push_timeout_seconds: float) -> timedelta:
    """How long a leased delivery stays with one relay: twice the push timeout and 10 seconds, so a push and the
    recording of its outcome fit, and a crashed process's jobs in flight go to another process that much later."""
    return timedelta(seconds=2 * push_timeout_seconds + 10)
