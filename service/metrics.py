"""Prometheus metrics of one service instance (own registry, so tests can run several instances)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from service.opsmetrics import OperationsMetrics

CONTENT_TYPE = CONTENT_TYPE_LATEST
DEADLINE_KINDS = ("acknowledgement", "smdt-outcome", "transfer-response", "discharge-summary")


class Metrics:
    """Requests by status, accepted messages by event, and the undelivered count (read at scrape time)."""

    def __init__(self) -> None:
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

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
