"""The soak's minute-by-minute samples of the hub and its database, and the check that every table's size is
explained by its stated lifetime (docs/operations.md, "Table lifetimes").

A table with no rule here fails the soak's verdict: a new table must come with a stated lifetime.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
import psutil

TOKEN_LIFETIME_SECONDS = 300  # the longest a trust's bearer token may live (service/identity/tokens.py MAX_LIFETIME)
TOKEN_GRACE_SECONDS = 300  # housekeeping keeps a token's id this long after expiry (identity/tokens.py CLOCK_SKEW)


@dataclass
class Sample:
    minute: float
    accepted_per_second: float
    p50_ms: float
    p99_ms: float
    rss_bytes: int
    connections: int
    database_bytes: int
    accepted_total: int
    pending_deliveries: int
    open_deadlines: int
    pushed_total: int
    rows: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    hostile_refused: int = 0

    @property
    def bytes_per_message(self) -> float:
        return self.database_bytes / self.accepted_total if self.accepted_total else float("nan")


def process_rss(pid: int) -> int:
    """Resident memory of the hub: the process and every process it started (workers)."""
    try:
        root = psutil.Process(pid)
        return sum(proc.memory_info().rss for proc in [root, *root.children(recursive=True)])
    except psutil.NoSuchProcess:
        return 0


async def database_figures(conn: asyncpg.Connection) -> tuple[dict[str, int], int, int, int, int]:
    """Rows per table (exact counts), database bytes, other connections, pending deliveries, open deadlines."""
    tables = [r["relname"] for r in await conn.fetch("SELECT relname FROM pg_stat_user_tables ORDER BY relname")]
    rows = {table: int(await conn.fetchval(f'SELECT count(*) FROM "{table}"')) for table in tables}  # noqa: S608
    size = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
    connections = int(
        await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    )
    pending = int(await conn.fetchval("SELECT count(*) FROM deliveries WHERE state = 'pending'"))
    open_deadlines = int(await conn.fetchval("SELECT count(*) FROM deadlines WHERE met_at IS NULL"))
    return rows, size, connections, pending, open_deadlines


class Timeline:
    """When each request that used up a fresh token, and each accepted message, was sent (seconds, monotonic)."""

    def __init__(self) -> None:
        self.tokens: list[float] = []
        self.accepted: list[float] = []

    @staticmethod
    def since(times: list[float], start: float) -> int:
        return len(times) - bisect.bisect_left(times, start)


@dataclass(frozen=True)
class Context:
    """What a lifetime rule may compare a table with at one sample."""

    now: float
    timeline: Timeline
    rows: dict[str, int]
    accepted: int
    refused: int
    elapsed_seconds: float
    housekeeping_seconds: float
    retention_seconds: float
    retention_sweep_seconds: float
    checkpoint_seconds: float


@dataclass(frozen=True)
class Lifetime:
    stated: str
    bound: Callable[[Context], int]
    describe_bound: str


def _token_ids_bound(c: Context) -> int:
    window = TOKEN_LIFETIME_SECONDS + TOKEN_GRACE_SECONDS + 2 * c.housekeeping_seconds + 60
    return Timeline.since(c.timeline.tokens, c.now - window) + 50  # +50: staff sign-ins and the like


def _data_keys_bound(c: Context) -> int:
    """Pending, or delivered within retention plus two sweeps (+60 s): the soak counts those deliveries."""
    return c.rows.get("deliveries_pending", 0) + c.rows.get("deliveries_ended_recently", 0)


def _hub_messages(c: Context) -> int:
    return c.rows.get("non_delivery_reports", 0) + c.rows.get("pathway_clock_alerts", 0) + c.rows.get("alerts", 0)


LIFETIMES: dict[str, Lifetime] = {
    "messages": Lifetime(
        "forever (metadata; payload shredded at retention)", lambda c: c.accepted + _hub_messages(c), "accepted"
    ),
    "idempotency_keys": Lifetime("forever (a retry is answered with its receipt)", lambda c: c.accepted, "accepted"),
    "deliveries": Lifetime(
        "forever as the delivery record; pending until delivered or the window",
        lambda c: c.rows.get("messages", 0),
        "1 per message",
    ),
    "audit_events": Lifetime(
        "forever (append-only log)", lambda c: 3 * c.accepted + c.refused + 100, "3/accepted + 1/refused"
    ),
    "audit_checkpoints": Lifetime(
        "forever, one per interval or per 1,000 entries",
        lambda c: int(c.elapsed_seconds / c.checkpoint_seconds) + c.rows.get("audit_events", 0) // 1000 + 5,
        "1 per interval + 1 per 1,000 entries",
    ),
    "used_token_ids": Lifetime("until the token expired 5 min ago", _token_ids_bound, "tokens of the last ~11 min"),
    "data_keys": Lifetime("until retention after delivery", _data_keys_bound, "pending + delivered within retention"),
    "non_delivery_reports": Lifetime(
        "forever, one per dead letter", lambda c: c.rows.get("deliveries_dead", 0), "dead letters"
    ),
    "episodes": Lifetime("forever (clinical record)", lambda c: c.accepted, "1 per referral"),
    "episode_messages": Lifetime("forever (clinical record)", lambda c: c.accepted + _hub_messages(c), "1/message"),
    "responsibility_ledger": Lifetime("forever (append-only)", lambda c: 2 * c.accepted, "2 per referral"),
    "deadlines": Lifetime("forever (clinical record)", lambda c: 2 * c.accepted, "2 per referral"),
    "pathway_clock_alerts": Lifetime("forever, one per alert", lambda c: 3 * c.rows.get("episodes", 0), "3/episode"),
    "mesh_sends": Lifetime("forever, one per MESH delivery", lambda c: c.rows.get("deliveries", 0), "1/delivery"),
    "ui_sessions": Lifetime("until idle timeout (duty staff-sign-ins)", lambda c: 0, "no sign-ins in the soak"),
    "ui_sign_in_attempts": Lifetime("until 10 min old (duty staff-sign-ins)", lambda c: 0, "no sign-ins in the soak"),
    "redeliveries": Lifetime("forever, one per dead letter re-queued", lambda c: 0, "no staff in the soak"),
    "audit_verify_runs": Lifetime("forever, one per verify run", lambda c: 0, "no staff in the soak"),
    "push_circuits": Lifetime("constant: one row per push recipient", lambda c: 10, "recipients"),
    "housekeeping_duties": Lifetime("constant: one row per duty", lambda c: 10, "duties"),
    "schema_migrations": Lifetime("constant: one row per migration", lambda c: 100, "migrations"),
}


def check_tables(context: Context) -> dict[str, tuple[int, int | None, bool]]:
    """table -> (rows, bound or None when the table has no stated lifetime, within its bound)."""
    checked: dict[str, tuple[int, int | None, bool]] = {}
    for table, count in sorted(context.rows.items()):
        if table.startswith("deliveries_"):
            continue  # derived figures, not tables
        rule = LIFETIMES.get(table)
        bound = None if rule is None else rule.bound(context)
        checked[table] = (count, bound, bound is not None and count <= bound)
    return checked
