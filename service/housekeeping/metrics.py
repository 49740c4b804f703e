"""Housekeeping on /metrics, read from `housekeeping_duties` at scrape time (the same figures whichever hub
process answers): per duty, rows removed, runs and failures (counters), the time of the last run and of the
last success, whether the last run succeeded, and how many rows it removed."""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from service.errors import HandoverError
from service.store import db
from service.store.housekeeping import DutyFigures, read_duty_figures


class HousekeepingMetrics(Collector):
    """Registered on `registry`; `refresh` before each render (a failed read leaves the families out)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.figures: list[DutyFigures] = []
        registry.register(self)

    async def refresh(self, pool: asyncpg.Pool) -> None:
        try:
            async with db.connection(pool) as conn:
                self.figures = await read_duty_figures(conn)
        except (HandoverError, asyncpg.PostgresError):
            self.figures = []  # unknown is left out, never reported stale

    def describe(self) -> list[Metric]:
        return []  # unchecked: the families follow what the database holds

    def collect(self) -> Iterator[Metric]:
        removed = CounterMetricFamily(
            "handover_housekeeping_rows_removed", "Rows removed by a housekeeping duty (all processes)", labels=["duty"]
        )
        runs = CounterMetricFamily("handover_housekeeping_runs", "Runs of a housekeeping duty", labels=["duty"])
        failures = CounterMetricFamily(
            "handover_housekeeping_failures", "Runs of a housekeeping duty that failed", labels=["duty"]
        )
        last_run = GaugeMetricFamily(
            "handover_housekeeping_last_run_timestamp_seconds", "When a duty's last run finished", labels=["duty"]
        )
        last_success = GaugeMetricFamily(
            "handover_housekeeping_last_success_timestamp_seconds", "When a duty last ran successfully", labels=["duty"]
        )
        last_ok = GaugeMetricFamily(
            "handover_housekeeping_last_run_success", "1 if a duty's last run succeeded, else 0", labels=["duty"]
        )
        last_removed = GaugeMetricFamily(
            "handover_housekeeping_last_run_removed_rows", "Rows a duty's last run removed", labels=["duty"]
        )
        for duty in self.figures:
            removed.add_metric([duty.duty], duty.removed_total)
            runs.add_metric([duty.duty], duty.runs_total)
            failures.add_metric([duty.duty], duty.failures_total)
            last_removed.add_metric([duty.duty], duty.last_removed)
            if duty.last_finished_at is not None:
                last_run.add_metric([duty.duty], duty.last_finished_at.timestamp())
                last_ok.add_metric([duty.duty], 1.0 if duty.last_ok else 0.0)
            if duty.last_success_at is not None:
                last_success.add_metric([duty.duty], duty.last_success_at.timestamp())
        yield from (removed, runs, failures, last_run, last_success, last_ok, last_removed)
