"""POST /fhir/Bundle/$validate and the public profile pages under /profiles, on the real service over real HTTP.

Until service/app.py routes them, the hub used here is the real application with the two routes added."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from service.app import build_app
from service.http import profiles_ui, validate
from service.terminology import PROFILES_DIR
from tests.support.hub import Network, RunningHub, free_port, settings_for

VALIDATE = "/fhir/Bundle/$validate"
EXAMPLES = PROFILES_DIR / "examples"


@asynccontextmanager
async def validating_hub(network: Network, dsn: str, **overrides: Any) -> AsyncIterator[RunningHub]:
    port = free_port()
    settings = settings_for(network, dsn, port, **overrides)
    app = build_app(settings, dsn)
    routed = {resource.canonical for resource in app.router.resources()}
    if VALIDATE not in routed:
        app.router.add_post(VALIDATE, validate.validate_bundle)
    if profiles_ui.PUBLIC_PATH not in routed:
        profiles_ui.add_routes(app.router)
    runner = web.AppRunner(app, auto_decompress=False, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            yield RunningHub(f"http://127.0.0.1:{port}", settings, dsn, network, session, app)
    finally:
        await runner.cleanup()


async def post(
    hub: RunningHub, body: bytes, *, headers: dict[str, str] | None = None, token: bool = True
) -> tuple[int, dict[str, Any]]:
    sent = {"Content-Type": "application/fhir+json", "X-Request-ID": str(uuid.uuid4())}
    if token:
        sent["Authorization"] = f"Bearer {hub.trust('RM1').bearer_token()}"
    sent.update(headers or {})
    async with hub.session.post(hub.base_url + VALIDATE, data=body, headers=sent) as response:
        return response.status, json.loads(await response.read())


def example(name: str) -> bytes:
    path = (
        EXAMPLES / f"{name}.json"
        if name.startswith("Bundle-")
        else EXAMPLES / "invalid" / f"Bundle-invalid-{name}.json"
    )
    return path.read_bytes()


def codes(outcome: dict[str, Any]) -> list[str]:
    return [c["code"] for issue in outcome["issue"] for c in issue.get("details", {}).get("coding", [])]


async def stored_rows(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT (SELECT count(*) FROM messages) + (SELECT count(*) FROM audit_events)"))
    finally:
        await conn.close()


async def test_a_conforming_message_gets_an_information_outcome_and_nothing_is_stored(
    network: Network, database: str
) -> None:
    async with validating_hub(network, database) as hub:
        before = await stored_rows(database)
        status, outcome = await post(hub, example("Bundle-referral"))
        assert status == 200
        assert outcome["resourceType"] == "OperationOutcome"
        assert [issue["severity"] for issue in outcome["issue"]] == ["information"]
        assert await stored_rows(database) == before


async def test_every_issue_is_reported_with_its_expression_and_code(network: Network, database: str) -> None:
    doc = json.loads(example("referral-bad-nhs-number"))
    doc["entry"][2]["resource"].pop("birthDate")
    async with validating_hub(network, database) as hub:
        status, outcome = await post(hub, json.dumps(doc).encode())
    assert status == 200
    errors = {issue["expression"][0] for issue in outcome["issue"] if issue["severity"] == "error"}
    assert errors == {"Bundle.entry[2].resource.identifier[0]", "Bundle.entry[2].resource.birthDate"}
    assert "profile-violation" in codes(outcome) and "SEND_UNPROCESSABLE_ENTITY" in codes(outcome)


async def test_warnings_come_with_the_information_that_the_message_conforms(network: Network, database: str) -> None:
    doc = json.loads(example("Bundle-referral"))
    doc["entry"][1]["resource"].pop("extension")
    async with validating_hub(network, database) as hub:
        status, outcome = await post(hub, json.dumps(doc).encode())
    assert status == 200
    assert {issue["severity"] for issue in outcome["issue"]} == {"warning", "information"}


async def test_a_parameters_body_and_a_gzipped_body_are_read_like_process_message(
    network: Network, database: str
) -> None:
    parameters = {
        "resourceType": "Parameters",
        "parameter": [{"name": "resource", "resource": json.loads(example("Bundle-acknowledgement"))}],
    }
    async with validating_hub(network, database) as hub:
        status, outcome = await post(hub, json.dumps(parameters).encode())
        assert (status, [i["severity"] for i in outcome["issue"]]) == (200, ["information"])
        status, outcome = await post(
            hub, gzip.compress(example("Bundle-discharge-summary")), headers={"Content-Encoding": "gzip"}
        )
        assert (status, [i["severity"] for i in outcome["issue"]]) == (200, ["information"])


async def test_a_document_that_is_not_a_message_is_reported_not_refused(network: Network, database: str) -> None:
    async with validating_hub(network, database) as hub:
        status, outcome = await post(hub, b'{"resourceType": "Patient", "id": "SECRET-VALUE"}')
    assert status == 200 and "not-a-message" in codes(outcome)
    assert "SECRET-VALUE" not in json.dumps(outcome)


async def test_unreadable_requests_are_refused_as_on_process_message(network: Network, database: str) -> None:
    async with validating_hub(network, database, max_body_bytes=4096) as hub:
        assert (await post(hub, example("Bundle-referral"), token=False))[0] == 401
        assert (await post(hub, example("Bundle-referral"), headers={"Content-Type": "text/plain"}))[0] == 415
        status, outcome = await post(hub, b'{"resourceType": "Bundle", "type": "message", "type": "x"}')
        assert status == 400 and "invalid-json" in codes(outcome)
        status, outcome = await post(hub, b'{"x": "' + b"a" * 5000 + b'"}')
        assert status == 413 and "payload-too-large" in codes(outcome)


async def test_profile_pages_are_served(network: Network, database: str) -> None:
    async with validating_hub(network, database) as hub:
        for path, words in [
            ("/profiles", "Handover messages and profiles"),
            ("/profiles/message-referral", "Bundle-referral"),
            ("/profiles/handover-patient.html", "Patient.identifier:nhsNumber"),
        ]:
            async with hub.session.get(hub.base_url + path) as response:
                text = await response.text()
                assert response.status == 200 and response.content_type == "text/html", path
                assert words in text or words.removeprefix("Bundle-") in text, path
                assert "default-src 'none'" in response.headers["Content-Security-Policy"]
            assert 'href="/profiles/' in text, "the public pages link to each other, not into /ui/"
        async with hub.session.get(hub.base_url + "/profiles/no-such-profile") as response:
            assert response.status == 404
            assert "not-found" in codes(json.loads(await response.read()))
        for path in ("/ui/profiles", "/ui/profiles/message-referral"):  # inside the staff pages: a session first
            async with hub.session.get(hub.base_url + path, allow_redirects=False) as response:
                assert response.status == 401, path
