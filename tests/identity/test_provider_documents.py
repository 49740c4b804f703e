"""The provider's documents as the hub keeps them: the JWKS re-read once its Cache-Control max-age has passed
(bounded by HANDOVER_OIDC_KEYS_MAX_AGE_SECONDS, which also stands for no header), discovery read through an
allow-list, and the configuration refusing `none` and HMAC algorithms."""

from __future__ import annotations

import httpx2
import pytest

from service.config import Settings
from service.errors import ConfigError
from service.identity.oidc_documents import ProviderDocumentError, ProviderDocuments, max_age, metadata_from_discovery
from tests.identity.oidc_provider import KEY_A, KEY_B, running_provider


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, 3600), ("max-age=300", 300), ("public, max-age=86400000", 3600), ("no-store", 0), ("max-age=0", 0)],
)
def test_cache_control_is_honoured_within_the_bound(header: str | None, seconds: float) -> None:
    assert max_age(header, 3600) == seconds


async def test_the_jwks_is_read_again_once_its_max_age_has_passed() -> None:
    clock = FakeClock()
    async with running_provider() as provider:
        provider.behaviour.jwks_cache_control = "max-age=300"
        documents = ProviderDocuments(provider.issuer, httpx2.AsyncClient, max_age_seconds=3600, monotonic=clock)
        assert {key.kid for key in (await documents.key_set()).keys} == {"key-a", "key-b"}
        provider.behaviour.published_keys = [KEY_B]  # key A withdrawn
        clock.now += 299
        assert "key-a" in {key.kid for key in (await documents.key_set()).keys}  # still fresh
        clock.now += 2
        assert {key.kid for key in (await documents.key_set()).keys} == {"key-b"}
        assert provider.seen.jwks_fetches == 2
        provider.behaviour.jwks_cache_control = "max-age=999999999"  # bounded by the hub's own ceiling
        provider.behaviour.published_keys = [KEY_A]
        clock.now += 301
        await documents.key_set()
        clock.now += 3601
        assert {key.kid for key in (await documents.key_set()).keys} == {"key-a"}
        assert provider.seen.jwks_fetches == 4


def test_discovery_keeps_only_the_allow_listed_members() -> None:
    issuer = "https://idp.example"
    document = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/a",
        "token_endpoint": f"{issuer}/t",
        "jwks_uri": f"{issuer}/k",
        "code_challenge_method": "plain",
        "timeout": 120,
    }
    kept = metadata_from_discovery(document, issuer)
    assert vars(kept) == {k: document[k] for k in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")}
    for broken in ({**document, "issuer": "https://other.example"}, {**document, "jwks_uri": "file:///etc/passwd"}):
        with pytest.raises(ProviderDocumentError):
            metadata_from_discovery(broken, issuer)


def test_only_asymmetric_algorithms_can_be_configured() -> None:
    assert Settings.from_env({}).oidc_algorithms == ("RS256", "PS256", "ES256")
    assert Settings.from_env({"HANDOVER_OIDC_ALGORITHMS": "ES256, EdDSA"}).oidc_algorithms == ("ES256", "EdDSA")
    for wrong in ("none", "RS256,HS256", "HS512", "rs256"):
        with pytest.raises(ConfigError, match="HANDOVER_OIDC_ALGORITHMS"):
            Settings.from_env({"HANDOVER_OIDC_ALGORITHMS": wrong})


def test_the_public_url_is_checked_and_defaults_to_the_listen_address() -> None:
    assert Settings.from_env({"HANDOVER_LISTEN": "0.0.0.0:9000"}).staff_public_url == "http://127.0.0.1:9000"
    settings = Settings.from_env({"HANDOVER_PUBLIC_URL": "https://handover.trust.example/"})
    assert settings.staff_public_url == "https://handover.trust.example"
    for wrong in ("handover.trust.example", "ftp://x.example", "https://x.example/?a=b"):
        with pytest.raises(ConfigError, match="HANDOVER_PUBLIC_URL"):
            Settings.from_env({"HANDOVER_PUBLIC_URL": wrong})
