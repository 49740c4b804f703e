"""Development private keys on disk and their registration in the network registry (``handover keys init``).

This module owns the private-key directory (``keys/private`` by default, mode 0700): one private JWK per
current participant, ``<ODS>.jwk``, and the hub's ``hub.jwk``, each mode 0600 and never committed. It
writes the matching public JWKs into ``keys/network.json``, editing only the ``jwks`` it must and keeping
every other member of the file as it was. Former participants (``"active": false``) get no keys.

Keys are EC P-256 (ES256) with ``kid`` = RFC 7638 thumbprint. Writes are atomic (temporary file, fsync,
``os.replace``); private keys are written before the registry, so an interrupted run is repaired by the
next one (a kept key whose public part is missing from the registry is added back).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc import jwk

from service.registry import HUB_OWNER, ODS_CODE, RegistryError, load_registry, registry_from_document
from service.signing import thumbprint

_KEY_MEMBER_ORDER = ("kid", "kty", "crv", "x", "y", "alg", "use", "status", "revoked_at")


@dataclass(frozen=True)
class KeyInitReport:
    """What `init_keys` did, by owner (ODS code or ``hub``): keys `created`, existing keys `kept`, and
    the kept keys whose public part had to be (re)added to the registry (`registered`)."""

    created: tuple[str, ...]
    kept: tuple[str, ...]
    registered: tuple[str, ...]
    network_path: Path
    keys_dir: Path


def init_keys(network_path: Path, keys_dir: Path, *, force: bool = False) -> KeyInitReport:
    """Make sure the hub and every current participant have a private key in `keys_dir` whose public JWK
    is registered (status active) in the registry at `network_path`.

    An existing ``<owner>.jwk`` is kept unless `force`. A new key is added as the owner's active key; the
    owner's previously active registered keys become ``retiring`` (verify only), or, with `force`, the
    owner's registered keys are replaced. Raises RegistryError if the registry is invalid before or after.
    """
    registry = load_registry(network_path)
    doc = json.loads(network_path.read_text(encoding="utf-8"))
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(keys_dir, 0o700)

    owners = [HUB_OWNER, *(ods for ods, p in registry.participants.items() if p.active)]
    created: list[str] = []
    kept: list[str] = []
    registered: list[str] = []
    for owner in owners:
        registered_keys = _jwks_list(doc, owner)
        path = keys_dir / f"{owner}.jwk"
        if path.exists() and not force:
            public = public_jwk(load_private_jwk(keys_dir, owner))
            kept.append(owner)
            if not any(k.get("kid") == public["kid"] for k in registered_keys):
                _add_active(registered_keys, public)
                registered.append(owner)
            continue
        private = generate_private_jwk()
        _write_private(path, private)
        created.append(owner)
        if force:
            registered_keys.clear()
        _add_active(registered_keys, public_jwk(private))

    if created or registered:
        try:
            registry_from_document(doc)
        except RegistryError as err:
            raise RegistryError(f"{network_path}: refusing to write an invalid registry: {err}") from err
        _write_registry(network_path, doc)
    return KeyInitReport(tuple(created), tuple(kept), tuple(registered), network_path, keys_dir)


def load_private_jwk(keys_dir: Path, owner: str) -> dict[str, Any]:
    """The private JWK of `owner` (an ODS code or ``hub``) from ``keys_dir/<owner>.jwk``.

    Raises FileNotFoundError naming ``handover keys init`` when it is missing, and ValueError for a bad
    owner name or a file that is not a private EC/OKP JWK whose kid (if present) is its thumbprint.
    """
    if owner != HUB_OWNER and not ODS_CODE.fullmatch(owner):
        raise ValueError("owner must be an ODS code or 'hub'")
    path = keys_dir / f"{owner}.jwk"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"no private key for {owner} at {path}; run `handover keys init` to create development keys"
        ) from err
    try:
        key = json.loads(text)
    except ValueError as err:
        raise ValueError(f"{path} is not JSON") from err
    if not isinstance(key, dict) or not isinstance(key.get("d"), str):
        raise ValueError(f"{path} is not a private JWK")
    kid = thumbprint(key)
    if key.get("kid", kid) != kid:
        raise ValueError(f"{path}: kid is not the key's RFC 7638 thumbprint")
    return key


def generate_private_jwk() -> dict[str, Any]:
    """A new EC P-256 private JWK for ES256, with ``kid`` = its thumbprint."""
    raw = jwk.ECKey.generate_key("P-256", private=True).as_dict(private=True)
    key = {name: raw[name] for name in ("kty", "crv", "x", "y", "d")}
    return {"kid": thumbprint(key), **key, "alg": "ES256", "use": "sig"}


def public_jwk(private: dict[str, Any], status: str = "active") -> dict[str, Any]:
    """The registry entry for a private EC or OKP JWK: public members, alg, use, kid and `status`."""
    kty = private.get("kty")
    alg = "ES256" if kty == "EC" else "Ed25519"
    members = ("kty", "crv", "x", "y") if kty == "EC" else ("kty", "crv", "x")
    public = {m: private[m] for m in members}
    return {"kid": thumbprint(private), **public, "alg": alg, "use": "sig", "status": status}


def _jwks_list(doc: dict[str, Any], owner: str) -> list[dict[str, Any]]:
    holder = doc["hub"] if owner == HUB_OWNER else doc["participants"][owner]
    jwks = holder.setdefault("jwks", {"keys": []})
    keys: list[dict[str, Any]] = jwks.setdefault("keys", [])
    return keys


def _add_active(keys: list[dict[str, Any]], public: dict[str, Any]) -> None:
    for index, key in enumerate(keys):
        if key.get("status") == "active":
            keys[index] = _ordered({**key, "status": "retiring"})
    keys.append(public)


def _ordered(key: dict[str, Any]) -> dict[str, Any]:
    rank = {name: i for i, name in enumerate(_KEY_MEMBER_ORDER)}
    return dict(sorted(key.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


def _write_private(path: Path, key: dict[str, Any]) -> None:
    _atomic_write(path, json.dumps(key, indent=2) + "\n", 0o600)


def _write_registry(path: Path, doc: dict[str, Any]) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o644
    _atomic_write(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n", mode)


def _atomic_write(path: Path, text: str, mode: int) -> None:
    """Write `text` to `path` with `mode` via a temporary file in the same directory and os.replace."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):  # some filesystems cannot fsync a directory
            os.fsync(directory)
    finally:
        os.close(directory)
