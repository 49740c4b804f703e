"""The hub's own private signing key in service, following the network registry without a restart.

Receipts, non-delivery reports, alerts, push bearer tokens and audit checkpoints are all signed with the hub
key. `HubSigningKey` is the one place they get it from: every `current()` call compares the registry in
service (`RegistryHolder.current`, swapped whole on SIGHUP or ``POST /ops/reload-registry``) with the one it
last saw, and when the registry names another active hub key it loads that key's private JWK from the keys
directory (``hub.jwk``, or ``hub.<kid>.retired.jwk`` when it has already been rotated past). So after
``handover keys rotate hub`` and a registry reload, everything is signed with the new key from the moment the
registry in service calls it active, and nothing is signed with a key the registry does not list: until the
reload the old key (still active in that registry) keeps signing. If the private key of the newly active kid
cannot be found, the key in use stays and the failure is logged (signatures keep verifying until the old key's
``retire_after``).

Callers hold a `HubKey` (a `HubSigningKey`, or a plain private JWK in tests and tools) and take a snapshot with
`hub_jwk` for each signature, so one signature never mixes two keys.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from service.identity.keystore import load_private_jwk
from service.identity.notes import NoteSigner
from service.identity.registry import HUB_OWNER, Registry, RegistryError, RegistryHolder
from service.identity.signing import thumbprint

log = logging.getLogger("handover.identity.hubkey")


class HubSigningKey:
    """The hub's private JWK in service; `current()` follows the active hub key of `registry`."""

    def __init__(self, keys_dir: Path, registry: RegistryHolder) -> None:
        self._keys_dir = keys_dir
        self._registry = registry
        self._key: Mapping[str, Any] = load_private_jwk(keys_dir, HUB_OWNER)
        self._kid = thumbprint(self._key)
        self._seen: Registry | None = None
        self._note_signers: dict[tuple[str, str], NoteSigner] = {}

    def current(self) -> Mapping[str, Any]:
        """The private JWK to sign with now (a snapshot: never changed in place)."""
        registry = self._registry.current
        if registry is not self._seen:
            self._seen = registry
            self._follow(registry)
        return self._key

    @property
    def kid(self) -> str:
        """The kid of the key `current()` returns."""
        self.current()
        return self._kid

    def note_signer(self, origin: str) -> NoteSigner:
        """A checkpoint note signer with the current key under key name `origin` (cached per key)."""
        key = self.current()
        cache_key = (thumbprint(key), origin)
        signer = self._note_signers.get(cache_key)
        if signer is None:
            signer = self._note_signers[cache_key] = NoteSigner(key, origin)
        return signer

    def _follow(self, registry: Registry) -> None:
        try:
            active = registry.active_hub_key().kid
        except RegistryError:
            log.error("the registry in service has no active hub key; still signing with the key in use")
            return
        if active == self._kid:
            return
        fresh = self._private_key_for(active)
        if fresh is None:
            log.error(
                "no private key for the registry's active hub key in the keys directory; still signing with the "
                "key in use",
                extra={"kid": active, "in_use": self._kid},
            )
            return
        previous, self._key, self._kid = self._kid, fresh, active
        log.info("hub signing key changed", extra={"kid": active, "previous": previous})

    def _private_key_for(self, kid: str) -> Mapping[str, Any] | None:
        candidates = [self._keys_dir / f"{HUB_OWNER}.jwk", self._keys_dir / f"{HUB_OWNER}.{kid}.retired.jwk"]
        for path in candidates:
            if not path.exists():
                continue
            try:
                key = load_private_jwk(path.parent, HUB_OWNER) if path.name == "hub.jwk" else _load(path)
            except (OSError, ValueError):
                log.error("unreadable hub private key file", extra={"path": str(path)})
                continue
            if thumbprint(key) == kid:
                return key
        return None


HubKey = Mapping[str, Any] | HubSigningKey
"""The hub key as signers take it: the key in service, or one fixed private JWK."""


def hub_jwk(key: HubKey) -> Mapping[str, Any]:
    """The private JWK to sign one thing with now."""
    return key.current() if isinstance(key, HubSigningKey) else key


def _load(path: Path) -> Mapping[str, Any]:
    value = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(value, dict) or not isinstance(value.get("d"), str):
        raise ValueError(f"{path} is not a private JWK")
    return value
