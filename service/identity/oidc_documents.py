"""What the hub reads from its OpenID Connect provider: the discovery document and the JWKS.

Discovery is read through an allow-list: only `issuer`, `authorization_endpoint`, `token_endpoint` and `jwks_uri`
are kept, each checked (a string, an http(s) URL; the issuer must be the configured one). Nothing else in the
document (`code_challenge_method`, `timeout`, `scope`, the algorithms it claims to support…) can reach the
hub's OAuth client, whose settings are its own.

Both documents are cached and read again once stale: the JWKS after its `Cache-Control: max-age` (no header,
or more than `max_age_seconds`, counts as `max_age_seconds`; `no-store` / `no-cache` as 0), discovery after
`max_age_seconds`. So a key the provider withdraws stops being trusted at the latest `max_age_seconds` after it
goes, without a restart. A token whose `kid` is unknown makes the hub read the JWKS again once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx2
from joserfc.jwk import KeySet

DISCOVERY_MEMBERS = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
MAX_DOCUMENT_BYTES = 256 * 1024
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,12})\"?\s*(?:,|$)", re.IGNORECASE)


class ProviderDocumentError(ValueError):
    """A discovery document or JWKS that cannot be used (what is wrong, without its content)."""


@dataclass(frozen=True)
class ProviderMetadata:
    """The allow-listed members of the provider's discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


def metadata_from_discovery(document: Any, expected_issuer: str) -> ProviderMetadata:
    """The allow-listed members of `document`, checked; ProviderDocumentError if one is missing or unusable."""
    if not isinstance(document, dict):
        raise ProviderDocumentError("the discovery document is not a JSON object")
    kept: dict[str, str] = {}
    for member in DISCOVERY_MEMBERS:
        value = document.get(member)
        if not isinstance(value, str) or not _is_web_url(value):
            raise ProviderDocumentError(f"the discovery document has no usable {member}")
        kept[member] = value
    if kept["issuer"].rstrip("/") != expected_issuer:
        raise ProviderDocumentError("the discovery document names another issuer")
    return ProviderMetadata(**kept)


def max_age(cache_control: str | None, ceiling: float) -> float:
    """Seconds a response may be reused: its max-age, bounded by `ceiling` (which also stands for no header)."""
    if not cache_control:
        return ceiling
    if re.search(r"\b(no-store|no-cache)\b", cache_control, re.IGNORECASE):
        return 0.0
    found = _MAX_AGE.search(cache_control)
    return ceiling if found is None else min(float(found.group(1)), ceiling)


def _is_web_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.fragment


class ProviderDocuments:
    """The provider's discovery document and JWKS, each cached until stale. `http` makes the HTTP client (the
    caller sets its timeouts); `monotonic` is the clock staleness is measured with."""

    def __init__(
        self,
        issuer: str,
        http: Callable[[], httpx2.AsyncClient],
        *,
        max_age_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self._http = http
        self._ceiling = max_age_seconds
        self._monotonic = monotonic
        self._metadata: tuple[ProviderMetadata, float] | None = None  # (document, stale after)
        self._keys: tuple[KeySet, float] | None = None

    async def metadata(self) -> ProviderMetadata:
        now = self._monotonic()
        if self._metadata is None or now >= self._metadata[1]:
            document, _ = await self._get_json(f"{self.issuer}/.well-known/openid-configuration")
            self._metadata = (metadata_from_discovery(document, self.issuer), now + self._ceiling)
        return self._metadata[0]

    async def key_set(self, *, force: bool = False) -> KeySet:
        """The provider's signing keys; read again when stale, or when `force`d (a token named an unknown kid)."""
        now = self._monotonic()
        if force or self._keys is None or now >= self._keys[1]:
            metadata = await self.metadata()
            document, cache_control = await self._get_json(metadata.jwks_uri)
            if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
                raise ProviderDocumentError("the JWKS has no keys")
            self._keys = (KeySet.import_key_set(document), now + max_age(cache_control, self._ceiling))  # type: ignore[arg-type]
        return self._keys[0]

    async def _get_json(self, url: str) -> tuple[Any, str | None]:
        async with self._http() as client:
            response = await client.get(url)
            response.raise_for_status()
            if len(response.content) > MAX_DOCUMENT_BYTES:
                raise ProviderDocumentError("a provider document is larger than the hub reads")
            return response.json(), response.headers.get("Cache-Control")
