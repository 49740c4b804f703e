"""The bare pipeline ceiling: what one Python process can accept per second with no framework around it.

Per message: strict JSON parse, RFC 8785 canonicalisation and ES256 verification of the detached signature,
a fhir.resources R4B parse of the Bundle, and one fsync'd PostgreSQL transaction writing a message row and an
audit row. Sixteen tasks share the process as sixteen clients share the hub, so commits overlap while the
CPU work is serialised, as in the hub. Issue 12 measures the hub against this figure, taken in the same run.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Sequence

import asyncpg
from fhir.resources.R4B.bundle import Bundle

from bench.load_messages import Request
from service.identity.registry import Registry
from service.identity.signing import verify_bundle_signature
from service.strictjson import parse_strict_json

TABLES = """
CREATE TABLE IF NOT EXISTS ceiling_messages (id uuid PRIMARY KEY, sender text NOT NULL, body bytea NOT NULL,
    sha256 text NOT NULL, accepted_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS ceiling_audit (seq bigserial PRIMARY KEY, message_id uuid NOT NULL, leaf bytea NOT NULL);
"""


async def bare_pipeline(dsn: str, registry: Registry, requests: Sequence[Request], *, concurrency: int) -> float:
    """Messages per second through the bare pipeline (every message must pass, else this raises)."""
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    assert pool is not None
    try:
        async with pool.acquire() as conn:
            await conn.execute(TABLES)
        queue = list(reversed(requests))

        async def worker() -> None:
            while queue:
                request = queue.pop()
                doc = parse_strict_json(request.body)
                verify_bundle_signature(doc, registry.key)
                Bundle.model_validate(doc)
                digest = hashlib.sha256(request.body).digest()
                message_id = uuid.uuid4()
                async with pool.acquire() as conn, conn.transaction():
                    await conn.execute(
                        "INSERT INTO ceiling_messages (id, sender, body, sha256) VALUES ($1, $2, $3, $4)",
                        message_id,
                        request.sender,
                        request.body,
                        digest.hex(),
                    )
                    await conn.execute(
                        "INSERT INTO ceiling_audit (message_id, leaf) VALUES ($1, $2)", message_id, digest
                    )

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(requests) / (time.perf_counter() - started)
    finally:
        await pool.close()
