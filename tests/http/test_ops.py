"""Operations endpoints and the CapabilityStatement."""

from __future__ import annotations

import json
import re

from service.terminology import load_code_system
from tests.support.hub import RunningHub
from tests.support.messages import referral


async def test_metadata_is_an_r4_messaging_capability_statement(hub: RunningHub) -> None:
    async with hub.session.get(f"{hub.base_url}/fhir/metadata") as resp:
        assert resp.status == 200 and resp.content_type == "application/fhir+json"
        statement = await resp.json(content_type=None)
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"].startswith("4.0")
    definitions = {m["definition"].rsplit("/", 1)[1] for m in statement["messaging"][0]["supportedMessage"]}
    assert definitions == set(load_code_system("handover-event").codes)


async def test_healthz_and_readyz(hub: RunningHub) -> None:
    for path in ("/healthz", "/readyz"):
        async with hub.session.get(hub.base_url + path) as resp:
            assert resp.status == 200, path


async def test_metrics_count_requests_accepted_messages_and_undelivered(hub: RunningHub) -> None:
    client = hub.trust("RM1")
    assert (await client.send(client.sign(referral()))).accepted
    await hub.post_raw(b"{")  # one refusal
    async with hub.session.get(f"{hub.base_url}/metrics") as resp:
        text = await resp.text()
    assert re.search(r'^handover_messages_accepted_total\{event="referral"\} 1\.0$', text, re.M), text
    assert re.search(r'^handover_http_requests_total\{status="202"\} 1\.0$', text, re.M)
    assert re.search(r'^handover_http_requests_total\{status="400"\} 1\.0$', text, re.M)
    assert re.search(r'^handover_messages_refused_total\{code="invalid-json"\} 1\.0$', text, re.M)
    assert re.search(r"^handover_messages_undelivered 1\.0$", text, re.M)


async def test_readyz_is_503_unavailable_when_the_database_is_gone(hub: RunningHub) -> None:
    import asyncpg

    from tests.support.databases import with_database

    conn = await asyncpg.connect(with_database(hub.dsn, "postgres"))
    try:
        name = hub.dsn.rsplit("/", 1)[1]
        await conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
        async with hub.session.get(f"{hub.base_url}/readyz") as resp:
            assert resp.status == 503
            assert resp.headers["Retry-After"].isdigit()
            body = json.loads(await resp.read())
            assert body["issue"][0]["details"]["coding"][0]["code"] == "unavailable"
        status, body, headers = await hub.post_raw(json.dumps(hub.trust("RM1").sign(referral())).encode())
        assert status == 503 and "Retry-After" in headers
        await conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        async with hub.session.get(f"{hub.base_url}/readyz") as resp:
            assert resp.status == 200, "recovers without a restart"
    finally:
        await conn.close()
