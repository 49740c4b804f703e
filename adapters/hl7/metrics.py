"""The connector's own figures for Prometheus, in a registry of its own (several connectors can share a process in
the tests); `handover hl7 listen --metrics HOST:PORT` serves them at `/metrics`."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ConnectorMetrics:
    """Counters for what the connector could not do and keeps trying, so it is seen before the queue is full."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.mailbox_unmapped = Counter(
            "handover_hl7_mailbox_unmapped",
            "Mailbox messages no HL7 message maps (hub alerts and reports), left in the mailbox; each counted once",
            ["event"],
            registry=self.registry,
        )
        self.mailbox_errors = Counter(
            "handover_hl7_mailbox_errors",
            "Mailbox messages whose handling failed, by exception type; each is left in the mailbox and retried later",
            ["error"],
            registry=self.registry,
        )

        self.epr_answers = Counter(
            "handover_hl7_epr_answers",
            "The EPR's answers to what the connector handed it: accepted, refused (AE/AR/CE/CR), unreadable, "
            "other-message (MSA-2 names another control ID)",
            ["outcome"],
            registry=self.registry,
        )
        self.mailbox_stuck = Gauge(
            "handover_hl7_mailbox_stuck",
            "Mailbox messages the EPR has not taken after 5 attempts in a row (alert when above 0)",
            registry=self.registry,
        )
        self.mailbox_failed_polls = Gauge(
            "handover_hl7_mailbox_failed_polls",
            "Mailbox polls in a row that failed (the hub or the EPR unreachable, or the poll itself failing); "
            "0 after a good poll",
            registry=self.registry,
        )
        self.hub_send_failures = Counter(
            "handover_hl7_hub_send_failures",
            "Failed sends of queued EPR messages to the hub: unreachable, server-error, busy, receipt",
            ["reason"],
            registry=self.registry,
        )

    def value(self, name: str, **labels: str) -> float:
        """One sample's value (0 when it was never counted)."""
        return float(self.registry.get_sample_value(name, labels) or 0.0)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
