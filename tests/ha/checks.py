"""What must hold in the store after a failover: every receipted message stored once and delivered once, the
audit log dense and verified (against every receipt and the checkpoints trusts fetched earlier), one root per
checkpoint size, and one safety-net alert per overdue answer however many hubs' safety nets ran."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import asyncpg

from service.auditlog.verify_cli import verify_database
from tests.ha.traffic import Outgoing
from tests.support.hub import Network


async def check_stored_once(dsn: str, receipted: Iterable[Outgoing]) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetch("SELECT sender_ods, bundle_identifier, request_id::text AS rid FROM messages")
    finally:
        await conn.close()
    copies: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        copies.setdefault((row["sender_ods"], row["bundle_identifier"]), []).append(row["rid"])
    for message in receipted:
        assert copies.get((message.sender, message.identifier)) == [message.request_id], (
            f"{message.identifier}: stored {len(copies.get((message.sender, message.identifier), []))} times"
        )


async def check_delivered_once(dsn: str, receipted: Sequence[Outgoing], business: Sequence[str]) -> None:
    """`business`: the Bundle identifiers the centre's business layer processed, in order."""
    assert len(business) == len(set(business)), "the centre's business layer saw a message twice"
    assert {m.identifier for m in receipted} <= set(business), "a receipted message was never delivered"
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        twice = await conn.fetch(
            "SELECT message_id FROM deliveries WHERE recipient_ods = 'RGT' GROUP BY message_id HAVING count(*) > 1"
        )
    finally:
        await conn.close()
    assert twice == [], "a message with two deliveries to the centre"


async def check_audit_and_alerts(
    dsn: str, network: Network, trusted: Sequence[tuple[str, str]], receipted: Sequence[Outgoing]
) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        two_roots = await conn.fetch(
            "SELECT tree_size FROM audit_checkpoints GROUP BY tree_size HAVING count(DISTINCT root_hash) > 1"
        )
        assert two_roots == [], "a checkpoint size with two roots"
        alerted = await conn.fetchval("SELECT count(*) FROM deadlines WHERE alerted_at IS NOT NULL")
        alert_messages = await conn.fetchval(
            "SELECT count(DISTINCT alert_message) FROM deadlines WHERE alert_message IS NOT NULL"
        )
        alerts_sent = await conn.fetchval(
            "SELECT count(*) FROM messages WHERE id IN (SELECT alert_message FROM deadlines)"
        )
    finally:
        await conn.close()
    assert alerted > 0, "the safety nets had overdue answers to alert"
    assert alert_messages == alerted == alerts_sent, "one alert per overdue answer, none sent twice"
    receipts = [(f"receipt {m.identifier}", m.receipt) for m in receipted if m.receipt is not None]
    assert len(receipts) == len(receipted)
    report = await verify_database(dsn, network.registry, trusted, receipts, workers=0)
    assert report.ok, report.divergences
