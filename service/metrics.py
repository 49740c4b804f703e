"""Prometheus metrics of one service instance (own registry, so tests can run several instances)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from service.background import FAULTS, DutyFaults
from service.housekeeping.metrics import HousekeepingMetrics
from service.opsmetrics import OperationsMetrics, process_label
from service.store.stalls import StallGuard

CONTENT_TYPE = CONTENT_TYPE_LATEST
DEADLINE_KINDS = ("acknowledgement", "smdt-outcome", "transfer-response", "discharge-summary")


class Metrics:
    """Requests by status, accepted messages by event, and the undelivered count (read at scrape time)."""

    def __init__(self, stall_guard: StallGuard | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "handover_http_requests", "HTTP requests answered, by status", ["status"], registry=self.registry
        )
        self.accepted = Counter(
            "handover_messages_accepted", "Messages accepted, by event", ["event"], registry=self.registry
        )
        self.refused = Counter(
            "handover_messages_refused", "Messages refused, by error code", ["code"], registry=self.registry
        )
        self.undelivered = Gauge(
            "handover_messages_undelivered", "Accepted messages not yet delivered", registry=self.registry
        )
        self.overdue = Gauge(
            "handover_deadlines_overdue",
            "Answers owed past their deadline (acknowledgement, smdt-outcome, transfer-response, discharge-summary)",
            ["kind"],
            registry=self.registry,
        )
        self.operations = OperationsMetrics(self.registry)  # relay, audit and safety-net figures (opsmetrics.py)
        self.housekeeping = HousekeepingMetrics(self.registry)  # lifetimes enforced, per duty (shared figures)
        self.registry.register(BackgroundFaultFigures(FAULTS))  # faults survived by each background duty
        if stall_guard is not None:  # intake's database stalls and pool resets in this process (failovers)
            self.registry.register(StallFigures(stall_guard))

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))


class StallFigures(Collector):
    """``handover_database_stalls_total`` (intake work abandoned after HANDOVER_INTAKE_DATABASE_TIMEOUT_SECONDS)
    and ``handover_database_pool_resets_total`` (every pooled connection dropped after stalls in a row), per
    process: during a failover they show the hub shedding work quickly and seeking the new primary."""

    def __init__(self, guard: StallGuard) -> None:
        self._guard = guard

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        process = process_label()
        stalls = CounterMetricFamily(
            "handover_database_stalls", "Intake database work abandoned at its time limit", labels=["process"]
        )
        stalls.add_metric([process], self._guard.stalls)
        resets = CounterMetricFamily(
            "handover_database_pool_resets",
            "Times every pooled connection was dropped after repeated stalls",
            labels=["process"],
        )
        resets.add_metric([process], self._guard.resets)
        yield from (stalls, resets)


class BackgroundFaultFigures(Collector):
    """``handover_background_errors_total{duty,process}``: the passes of each background duty of this process that
    failed (service/background.py); the duty kept running, but a rising count means it is not doing its job."""

    def __init__(self, faults: DutyFaults) -> None:
        self._faults = faults

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        process = process_label()
        errors = CounterMetricFamily(
            "handover_background_errors",
            "Passes of a background duty that failed (logged by type; the duty carries on after a back-off)",
            labels=["duty", "process"],
        )
        for duty, count in sorted(self._faults.counts.items()):
            errors.add_metric([duty, process], count)
        yield errors
