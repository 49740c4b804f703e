"""/metrics of a real hub carries the relay, audit and safety-net figures, and every metric that the alerting
rules (deploy/prometheus/alerts.yml) and the Grafana dashboard (deploy/grafana/handover.json) name is exposed.

The hub pushes to a real recipient (one message delivered, one refused and dead-lettered), holds one message
for a pull-only trust, signs checkpoints and alerts an overdue answer; a second hub on the same database, which
did none of this, reports the same database figures (they are read at scrape time, not counted in memory).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from prometheus_client.parser import text_string_to_metric_families

from adapters.recipient import Recipient
from service.app import SAFETY_NET
from tests.delivery.delivery_fixtures import eventually
from tests.delivery.test_relay_crash import via
from tests.episodes.test_episodes_api import Clock
from tests.support.faultproxy import FaultProxy
from tests.support.hub import Network, RunningHub, running_hub
from tests.support.messages import referral

ROOT = Path(__file__).resolve().parents[2]
METRIC = re.compile(r"\bhandover_[a-z0-9_]+")
Samples = dict[str, list[tuple[dict[str, str], float]]]


def named_in_rules(file: str = "alerts.yml") -> set[str]:
    """Every metric the rules in deploy/prometheus/`file` name."""
    doc = yaml.safe_load((ROOT / "deploy" / "prometheus" / file).read_text())
    exprs = [rule["expr"] for group in doc["groups"] for rule in group["rules"]]
    return {name for expr in exprs for name in METRIC.findall(expr)}


def named_in_dashboard() -> set[str]:
    doc = json.loads((ROOT / "deploy" / "grafana" / "handover.json").read_text())
    exprs = [target["expr"] for panel in doc["panels"] for target in panel.get("targets", [])]
    assert len(exprs) >= 15
    return {name for expr in exprs for name in METRIC.findall(expr)}


async def scrape(hub: RunningHub) -> Samples:
    async with hub.session.get(f"{hub.base_url}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    samples: Samples = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name].append((sample.labels, sample.value))
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    found = [v for have, v in samples[name] if all(have.get(k) == want for k, want in labels.items())]
    assert len(found) == 1, (name, labels, samples.get(name))
    return found[0]


async def test_every_metric_the_rules_and_dashboard_name_is_exposed_by_a_real_hub(
    network: Network, database: str, tmp_path: Path
) -> None:
    rgt = Recipient("RGT", network.registry)
    pushing = network.edited(tmp_path / "net", lambda doc: doc["participants"]["RGT"].update(endpoint=rgt.endpoint))
    rgt.registry = pushing.registry
    clock = Clock()
    async with rgt, running_hub(pushing, database, clock=clock, relay_poll_seconds=0.05, checkpoint_seconds=0.2) as hub:
        client = hub.trust("RM1")
        assert (await client.send(client.sign(referral("RM1", "RGT")))).accepted
        await eventually(lambda: _true(len(rgt.business) == 1), within=10, what="one push delivered")
        rgt.refuse_with(422, times=1)
        refused = hub.trust("RGP")
        assert (await refused.send(refused.sign(referral("RGP", "RGT")))).accepted
        pull = hub.trust("RGT")
        assert (await pull.send(pull.sign(referral("RGT", "RDE")))).accepted  # RDE is pull-only: it waits
        status, body, _ = await hub.post_raw(b"{}", as_ods="RM1")  # refused: counted by code
        assert status == 401, body  # no signature
        clock.offset = timedelta(hours=5)  # the acknowledgements are now overdue
        assert await hub.app[SAFETY_NET].sweep() >= 1

        async def dead_lettered_and_checkpointed() -> bool:
            samples = await scrape(hub)
            return bool(samples["handover_relay_dead_letters_total"]) and bool(
                samples["handover_audit_checkpoint_age_seconds"]
            )

        await eventually(dead_lettered_and_checkpointed, within=15, what="a dead letter and a checkpoint")
        await _settle(hub)
        samples = await scrape(hub)
        async with running_hub(pushing, database, clock=clock) as second:
            other = await scrape(second)

    exposed = set(samples)
    for name in sorted(named_in_rules() | named_in_dashboard()):
        assert name in exposed, f"{name} is named in the rules or dashboard but not exposed"

    assert value(samples, "handover_database_up") == 1
    assert value(samples, "handover_relay_queue_depth", recipient="RDE") == 1
    assert value(samples, "handover_relay_oldest_undelivered_seconds", recipient="RDE") >= 5 * 3600 - 60
    assert value(samples, "handover_relay_dead_letters_total", recipient="RGT") == 1
    assert value(samples, "handover_safety_net_alerts_sent_total", kind="acknowledgement") >= 1
    entries = value(samples, "handover_audit_entries")
    assert entries >= 6 and value(samples, "handover_audit_checkpoint_tree_size") <= entries
    delivered = [v for labels, v in samples["handover_relay_push_attempts_total"] if labels["outcome"] == "delivered"]
    rejected = [v for labels, v in samples["handover_relay_push_attempts_total"] if labels["outcome"] == "rejected"]
    assert sum(delivered) >= 1 and sum(rejected) == 1
    assert {labels["process"] for labels, _ in samples["handover_relay_push_attempts_total"]} == {
        labels["process"] for labels, _ in samples["handover_relay_push_seconds_count"]
    }
    assert sum(v for _, v in samples["handover_relay_push_seconds_count"]) == sum(delivered) + sum(rejected)
    assert value(samples, "handover_relay_circuit_state", recipient="RGT", state="closed") == 1
    assert value(samples, "handover_relay_circuit_state", recipient="RGT", state="open") == 0

    for shared in (
        "handover_relay_queue_depth",
        "handover_relay_dead_letters_total",
        "handover_safety_net_alerts_sent_total",
    ):
        assert sorted(map(_key, other[shared])) == sorted(map(_key, samples[shared])), shared
    assert "handover_relay_push_attempts_total" not in other, "per-process counts are not shared"


async def test_database_figures_report_the_store_down_instead_of_stale_numbers(network: Network, database: str) -> None:
    parts = urlsplit(database)
    async with (
        FaultProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy,
        running_hub(network, via(database, proxy.port)) as hub,
    ):
        client = hub.trust("RM1")
        assert (await client.send(client.sign(referral("RM1", "RDE")))).accepted
        before = await scrape(hub)
        assert value(before, "handover_database_up") == 1
        assert value(before, "handover_relay_queue_depth", recipient="RDE") == 1
        proxy.reset(refuse=True)  # every connection to PostgreSQL is cut, and new ones are refused
        during = await scrape(hub)
        proxy.reset(refuse=False)
    assert value(during, "handover_database_up") == 0
    assert "handover_relay_queue_depth" not in during and "handover_audit_entries" not in during


def _key(sample: tuple[dict[str, str], float]) -> tuple[str, float]:
    labels, v = sample
    return (json.dumps(labels, sort_keys=True), v)


async def _settle(hub: RunningHub) -> None:
    """Wait until no push is in flight, so the two scrapes compare the same database state."""

    async def quiet() -> bool:
        samples = await scrape(hub)
        return "RGT" not in {labels["recipient"] for labels, _ in samples["handover_relay_queue_depth"]}

    await eventually(quiet, within=10, what="RGT's queue empty")


async def _true(condition: bool) -> bool:
    return condition
