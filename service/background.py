"""Runs the hub's background duties for ever: one pass at a time, surviving any fault of a pass.

Every background loop of the hub (the safety net, the checkpoint signer, the relay's supervisor, the MESH bridge,
housekeeping …) runs through `run_forever`, so one unexpected exception (a PostgreSQL deadlock, a bug on odd
data) costs one pass, never the duty: the fault is logged with its type (never its message, which may quote
data), counted per duty in `FAULTS` (``handover_background_errors_total{duty}`` on /metrics, an alert in
deploy/prometheus/alerts.yml), and the next pass waits a bounded, growing back-off. Cancellation
(asyncio.CancelledError) and the `until` event still stop the duty. This is the one place, with the HTTP
middleware, allowed to catch any Exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from service.errors import HandoverError

log = logging.getLogger("handover.background")

MAX_BACKOFF_SECONDS = 60.0  # a failing duty is retried at least this often (or at its own interval if longer)
MAX_BACKOFF_FACTOR = 16  # and at least every 16 intervals: a duty polling fast recovers fast


class DutyFaults:
    """Faults per duty in this process since start; a duty is listed (at 0) from its first pass."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def known(self, duty: str) -> None:
        self.counts.setdefault(duty, 0)

    def count(self, duty: str) -> None:
        self.counts[duty] = self.counts.get(duty, 0) + 1


FAULTS = DutyFaults()  # process-wide, like the duties themselves: every Metrics registry reads it


def backoff_seconds(interval: float, failures: int) -> float:
    """The wait before the next pass after `failures` failed passes in a row: the interval doubling per failure,
    capped at MAX_BACKOFF_FACTOR intervals or MAX_BACKOFF_SECONDS, whichever is less, but never below the interval."""
    if failures <= 0:
        return interval
    cap = max(interval, min(MAX_BACKOFF_SECONDS, interval * MAX_BACKOFF_FACTOR))
    return min(cap, max(interval, 0.01) * 2.0 ** min(failures - 1, 30))


async def run_forever(
    duty: str,
    one_pass: Callable[[], Awaitable[object]],
    *,
    interval: float,
    until: asyncio.Event | None = None,
    wake: asyncio.Event | None = None,
    faults: DutyFaults = FAULTS,
) -> None:
    """Run `one_pass` every `interval` seconds until cancelled or `until` is set; `wake` (if given) starts the
    next pass early. A HandoverError (the store or the keys unavailable) or any other exception is logged by
    type, counted for `duty`, and the next pass waits `backoff_seconds`."""
    faults.known(duty)
    failures = 0
    while until is None or not until.is_set():
        try:
            await one_pass()
            failures = 0
        except HandoverError:
            failures += 1
            faults.count(duty)
            log.warning("background duty pass skipped: store or keys unavailable", extra={"code": duty}, exc_info=True)
        except Exception:  # the loop runner: any fault costs one pass, never the duty
            failures += 1
            faults.count(duty)
            log.exception("background duty pass failed", extra={"code": duty})  # type and place only (logs.py)
        await _pause(backoff_seconds(interval, failures), until=until, wake=wake)


async def _pause(seconds: float, *, until: asyncio.Event | None, wake: asyncio.Event | None) -> None:
    event = wake or until
    if event is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=seconds)
    if wake is not None:
        wake.clear()
