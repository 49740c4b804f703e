"""Staff sign-in against an identity provider that misbehaves (issue 26 item 7): the real hub, behind
HANDOVER_OIDC_ISSUER, driven through its sign-in flow over HTTP against a provider of our own
(tests/identity/oidc_provider.py) that approves at once, so a refusal answered with "sign in again" would loop.

Each test bends one thing: an unsigned token the discovery document claims to allow, discovery members that
would change the client's own settings, subjects empty or long, a withdrawn signing key, a role claim naming
two roles, nonsense in the token response, and a token endpoint that drips its answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest

from tests.identity.oidc_provider import CLIENT_SECRET, KEY_A, KEY_B, RAW_1E999, Provider, running_provider
from tests.support.databases import DatabaseFactory
from tests.support.hub import Network, RunningHub, running_hub
from tests.ui.http_signin import BROWSER

DEADLINE_SECONDS = 2.0


@pytest.fixture(scope="module")
async def provider() -> AsyncIterator[Provider]:
    async with running_provider() as running:
        yield running


@pytest.fixture(scope="module")
async def hub(network: Network, databases: DatabaseFactory, provider: Provider) -> AsyncIterator[RunningHub]:
    dsn = await databases.create()
    try:
        async with running_hub(
            network,
            dsn,
            oidc_issuer=provider.issuer,
            oidc_client_secret=CLIENT_SECRET,
            oidc_timeout_seconds=DEADLINE_SECONDS,
            ui_sign_in_starts_per_minute=10_000,
        ) as running:
            yield running
    finally:
        await databases.drop(dsn)


@pytest.fixture
async def fresh_hub(network: Network, database: str, provider: Provider) -> AsyncIterator[RunningHub]:
    """A hub of its own, for a test whose discovery document must be the first the hub reads."""
    async with running_hub(network, database, oidc_issuer=provider.issuer, oidc_client_secret=CLIENT_SECRET) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_behaviour(provider: Provider) -> None:
    provider.reset()
    provider.behaviour.jwks_cache_control = "max-age=0"  # the hub re-reads the keys for every sign-in


async def attempt(hub: RunningHub) -> tuple[int, str, bool]:
    """One browser's sign-in, followed to its end: the last status, its page, and whether a session cookie came."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with (
        aiohttp.ClientSession(cookie_jar=jar, headers=BROWSER) as client,
        client.get(f"{hub.base_url}/ui/sign-in", max_redirects=6) as resp,
    ):
        page = await resp.text()
        return resp.status, page, any(cookie.key.endswith("handover_session") for cookie in jar)


async def audited_actors(hub: RunningHub) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(hub.dsn)
    try:
        rows = await conn.fetch("SELECT outcome, actor FROM audit_events WHERE event_type = 'staff-login' ORDER BY seq")
    finally:
        await conn.close()
    return [(r["outcome"], r["actor"]) for r in rows]


async def test_a_well_behaved_provider_signs_in_with_pkce_s256_and_basic_auth(
    hub: RunningHub, provider: Provider
) -> None:
    status, page, session = await attempt(hub)
    assert (status, session) == (200, True), page
    assert "You are signed in" in page
    assert provider.seen.authorize[-1]["code_challenge_method"] == "S256"
    assert "client_secret" not in provider.seen.token[-1]  # sent as HTTP Basic, which the provider required


async def test_an_unsigned_id_token_is_refused_even_when_discovery_lists_none(
    fresh_hub: RunningHub, provider: Provider
) -> None:
    provider.behaviour.discovery_extra = {"id_token_signing_alg_values_supported": ["none", "RS256"]}
    provider.behaviour.alg = "none"
    status, page, session = await attempt(fresh_hub)
    assert (status, session) == (401, False)
    assert "could not be checked" in page


async def test_an_hs256_token_keyed_with_the_public_key_is_refused(hub: RunningHub, provider: Provider) -> None:
    provider.behaviour.hmac_with_public_key = True
    status, page, session = await attempt(hub)
    assert (status, session) == (401, False)
    assert "could not be checked" in page


async def test_a_provider_that_answers_with_an_error_gets_a_page_that_says_so(
    hub: RunningHub, provider: Provider
) -> None:
    provider.behaviour.authorize_error = "access_denied"
    status, page, session = await attempt(hub)
    assert (status, session) == (403, False)
    assert "The sign-in service did not sign you in" in page and "access_denied" in page


async def test_discovery_cannot_change_pkce_or_the_clients_own_settings(
    fresh_hub: RunningHub, provider: Provider
) -> None:
    provider.behaviour.discovery_extra = {
        "code_challenge_method": "plain",
        "timeout": 0.000001,
        "scope": "email",
        "token_endpoint_auth_method": "none",
        "client_id": "someone-else",
    }
    status, page, session = await attempt(fresh_hub)
    assert (status, session) == (200, True), page
    asked = provider.seen.authorize[-1]
    assert asked["code_challenge_method"] == "S256"
    assert (asked["client_id"], asked["scope"]) == ("handover", "openid profile")


async def test_an_empty_or_overlong_subject_is_refused(hub: RunningHub, provider: Provider) -> None:
    for subject in ("", "s" * 256):
        provider.behaviour.subject = subject
        status, page, session = await attempt(hub)
        assert (status, session) == (401, False), subject
        assert "no usable account identifier" in page


async def test_subjects_up_to_255_characters_are_audited_whole(hub: RunningHub, provider: Provider) -> None:
    first, second = "x" * 130 + "1", "x" * 130 + "2"
    longest = "y" * 255
    for subject in (first, second, longest):
        provider.behaviour.subject = subject
        status, page, _ = await attempt(hub)
        assert status == 200, page
    signed_in = [actor for outcome, actor in await audited_actors(hub) if outcome == "signed-in"]
    assert signed_in[-3:] == [first, second, longest]


async def test_a_withdrawn_signing_key_stops_being_trusted(hub: RunningHub, provider: Provider) -> None:
    status, _, _ = await attempt(hub)
    assert status == 200
    provider.behaviour.published_keys = [KEY_B]  # key A withdrawn; the provider (or a thief) still signs with it
    provider.behaviour.signing_key = KEY_A
    status, page, session = await attempt(hub)
    assert (status, session) == (401, False)
    assert "could not be checked" in page
    provider.behaviour.signing_key = KEY_B
    assert (await attempt(hub))[0] == 200


@pytest.mark.parametrize(
    "roles", [["trust:RM1", "governance"], ["governance", "trust:RM1"], ["ops", "ops", "governance"]]
)
async def test_a_role_claim_naming_two_roles_is_refused_whatever_the_order(
    hub: RunningHub, provider: Provider, roles: list[str]
) -> None:
    provider.behaviour.roles = roles
    status, page, session = await attempt(hub)
    assert (status, session) == (403, False)
    assert "more than one Handover role" in page
    assert (await audited_actors(hub))[-1] == ("refused-ambiguous-role", provider.behaviour.subject)


async def test_a_role_claim_naming_one_role_twice_is_that_role(hub: RunningHub, provider: Provider) -> None:
    provider.behaviour.roles = ["ops", "nurse", "ops"]
    status, page, session = await attempt(hub)
    assert (status, session) == (200, True), page


async def test_a_refused_sign_in_says_why_instead_of_starting_again(hub: RunningHub, provider: Provider) -> None:
    provider.behaviour.claims = {"exp": 1_000_000_000}  # long expired; the provider approves again at once
    status, page, session = await attempt(hub)  # a loop would end in TooManyRedirects
    assert (status, session) == (401, False)
    assert "Sign-in refused" in page and "could not be checked" in page
    assert 'href="/ui/sign-in"' in page  # trying again is the person's choice, not an automatic redirect
    provider.behaviour.roles = ["nurse"]
    provider.behaviour.claims = {}
    status, page, _ = await attempt(hub)
    assert status == 403 and "no Handover role" in page


@pytest.mark.parametrize("nonsense", [RAW_1E999, "soon", -5, None])
async def test_nonsense_in_the_token_response_is_no_server_error(
    hub: RunningHub, provider: Provider, nonsense: object
) -> None:
    provider.behaviour.token_extra = {"expires_in": nonsense}
    status, page, _ = await attempt(hub)
    assert status in (200, 401), page
    assert "Sign-in refused" in page or "You are signed in" in page


async def test_a_token_endpoint_that_drips_cannot_hold_sign_in_past_the_deadline(
    hub: RunningHub, provider: Provider
) -> None:
    provider.behaviour.drip_seconds = 0.01  # about 15 s for the whole answer; each byte well within a read timeout
    async with asyncio.timeout(DEADLINE_SECONDS * 4):  # without an overall deadline this fails (TimeoutError)
        status, page, session = await attempt(hub)
    assert (status, session) == (401, False)
    assert "did not answer in time" in page
