"""A trust's bearer token is used up by the one transaction that records what its $process-message request did:
the acceptance, or the refusal's audit event. So a request costs one commit, and still no token works twice,
whatever the first request's fate, and two requests racing with one token get one answer each, not two 202s.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg

from tests.support.hub import RunningHub
from tests.support.messages import error_codes, referral


async def post(hub: RunningHub, body: bytes, token: str) -> tuple[int, dict[str, Any]]:
    headers = {
        "Content-Type": "application/fhir+json",
        "X-Request-ID": str(uuid.uuid4()),
        "Authorization": f"Bearer {token}",
    }
    async with hub.session.post(f"{hub.base_url}/fhir/$process-message", data=body, headers=headers) as resp:
        return resp.status, json.loads(await resp.read())


async def stored(dsn: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return (
            int(await conn.fetchval("SELECT count(*) FROM messages")),
            int(await conn.fetchval("SELECT count(*) FROM used_token_ids")),
        )
    finally:
        await conn.close()


async def test_a_token_used_on_a_refused_message_is_used_up(hub: RunningHub) -> None:
    client = hub.trust("RM1")
    token = client.bearer_token()
    unsigned = json.dumps(referral()).encode()
    first = await post(hub, unsigned, token)
    assert first[0] == 401
    assert "signature-missing" in error_codes(first[1])
    second = await post(hub, json.dumps(client.sign(referral())).encode(), token)
    assert second[0] == 401
    assert "unauthenticated" in error_codes(second[1])
    assert await stored(hub.dsn) == (0, 1)


async def test_a_replayed_token_is_refused_as_a_replay_whatever_else_is_wrong(hub: RunningHub) -> None:
    client = hub.trust("RM1")
    token = client.bearer_token()
    assert (await post(hub, json.dumps(client.sign(referral())).encode(), token))[0] == 202
    status, body = await post(hub, b'{"resourceType": "Bundle", "type": "message"', token)  # not even JSON
    assert status == 401
    assert "unauthenticated" in error_codes(body)
    assert await stored(hub.dsn) == (1, 1)


async def test_two_messages_racing_with_one_token_get_one_acceptance(hub: RunningHub) -> None:
    client = hub.trust("RM1")
    for _ in range(5):
        token = client.bearer_token()
        bodies = [json.dumps(client.sign(referral())).encode() for _ in range(2)]
        answers = await asyncio.gather(*(post(hub, body, token) for body in bodies))
        assert sorted(status for status, _ in answers) == [202, 401]
    assert (await stored(hub.dsn))[0] == 5
