"""Relay, audit and safety-net figures on /metrics, correct when several hub processes share one database.

Two kinds of figure, named so that no query mixes them up:

* **Shared state, read from the database at scrape time** (whichever process answers, the figure is the same):
  ``handover_relay_queue_depth`` and ``handover_relay_oldest_undelivered_seconds`` per recipient,
  ``handover_relay_dead_letters_total`` per recipient, ``handover_audit_entries``,
  ``handover_audit_checkpoint_tree_size``, ``handover_audit_checkpoint_age_seconds``,
  ``handover_safety_net_alerts_sent_total`` by kind, and ``handover_database_up`` (0 when the reads failed;
  the database figures are then left out rather than reported stale).
* **Per process, counted in memory**, each series labelled ``process`` (``<host>:<pid>``) so that processes
  never overwrite each other's series and dashboards sum over it: ``handover_relay_push_attempts_total`` by
  recipient and outcome, the ``handover_relay_push_seconds`` latency histogram, and
  ``handover_relay_circuit_state`` (1 for the state each of this process's circuit breakers is in).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from service.store.ops_figures import OperationsFigures


def process_label() -> str:
    """``<host>:<pid>`` of this process, read at use (a worker forked after import gets its own)."""
    return f"{socket.gethostname()}:{os.getpid()}"


CIRCUIT_STATES = ("closed", "half-open", "open")
PUSH_SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

CircuitStates = Callable[[], Mapping[str, str]]
"""This process's circuit breakers: recipient ODS code -> ``closed`` | ``half-open`` | ``open``."""


class OperationsMetrics:
    """The figures above, registered on `registry`. Call `observe_push` per push attempt, set `circuits` to the
    relay's circuit reader, and `refresh` with the database figures (None: the database did not answer)
    before each render."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.push_attempts = Counter(
            "handover_relay_push_attempts",
            "Push attempts made by this process, by recipient and outcome (delivered, retry, rejected)",
            ["recipient", "outcome", "process"],
            registry=registry,
        )
        self.push_seconds = Histogram(
            "handover_relay_push_seconds",
            "Push attempt latency in this process (request sent to response read), by recipient",
            ["recipient", "process"],
            buckets=PUSH_SECONDS_BUCKETS,
            registry=registry,
        )
        self.circuits: CircuitStates = dict
        self._collector = _DatabaseFigures(self)
        registry.register(self._collector)

    def observe_push(self, recipient: str, outcome: str, seconds: float) -> None:
        process = process_label()
        self.push_attempts.labels(recipient, outcome, process).inc()
        self.push_seconds.labels(recipient, process).observe(seconds)

    def refresh(self, figures: OperationsFigures | None, now: datetime) -> None:
        self._collector.figures, self._collector.now = figures, now


class _DatabaseFigures(Collector):
    """Yields the last `refresh`ed database figures and this process's circuit states at render time."""

    def __init__(self, owner: OperationsMetrics) -> None:
        self._owner = owner
        self.figures: OperationsFigures | None = None
        self.now: datetime | None = None

    def describe(self) -> list[Metric]:
        return []  # unchecked: the families vary with what the database holds

    def collect(self) -> Iterator[Metric]:
        circuits = GaugeMetricFamily(
            "handover_relay_circuit_state",
            "1 for the state this process's circuit breaker to a recipient is in (closed, half-open, open)",
            labels=["recipient", "state", "process"],
        )
        process = process_label()
        for recipient, current in sorted(self._owner.circuits().items()):
            for state in CIRCUIT_STATES:
                circuits.add_metric([recipient, state, process], 1.0 if state == current else 0.0)
        yield circuits
        up = GaugeMetricFamily("handover_database_up", "1 if this scrape's database reads succeeded, else 0")
        up.add_metric([], 0.0 if self.figures is None else 1.0)
        yield up
        if self.figures is not None and self.now is not None:
            yield from _database_families(self.figures, self.now)


def _database_families(figures: OperationsFigures, now: datetime) -> Iterator[Metric]:
    depth = GaugeMetricFamily(
        "handover_relay_queue_depth", "Deliveries pending (push and mailbox), by recipient", labels=["recipient"]
    )
    oldest = GaugeMetricFamily(
        "handover_relay_oldest_undelivered_seconds",
        "Age of the oldest pending delivery (since acceptance), by recipient",
        labels=["recipient"],
    )
    for recipient, queue in sorted(figures.queues.items()):
        depth.add_metric([recipient], queue.depth)
        oldest.add_metric([recipient], max(0.0, (now - queue.oldest_created_at).total_seconds()))
    dead = CounterMetricFamily(
        "handover_relay_dead_letters", "Deliveries dead-lettered, by recipient", labels=["recipient"]
    )
    for recipient, count in sorted(figures.dead_letters.items()):
        dead.add_metric([recipient], count)
    entries = GaugeMetricFamily("handover_audit_entries", "Entries in the audit log")
    entries.add_metric([], figures.audit_entries)
    yield from (depth, oldest, dead, entries)
    if figures.checkpoint_size is not None and figures.checkpoint_signed_at is not None:
        size = GaugeMetricFamily("handover_audit_checkpoint_tree_size", "Tree size of the latest signed checkpoint")
        size.add_metric([], figures.checkpoint_size)
        age = GaugeMetricFamily("handover_audit_checkpoint_age_seconds", "Seconds since the latest checkpoint")
        age.add_metric([], max(0.0, (now - figures.checkpoint_signed_at).total_seconds()))
        yield from (size, age)
    alerts = CounterMetricFamily(
        "handover_safety_net_alerts_sent", "Overdue-answer alerts sent by the safety net, by kind", labels=["kind"]
    )
    for kind, count in sorted(figures.alerts_sent.items()):
        alerts.add_metric([kind], count)
    yield alerts
