"""Private keys on disk and the key lifecycle in the network registry (``handover keys init|rotate|revoke``).

This module owns the private-key directory (``keys/private`` by default, mode 0700): one private JWK per
current participant, ``<ODS>.jwk``, and the hub's ``hub.jwk``, each mode 0600 and never committed; after a
rotation the previous private key is kept beside it as ``<owner>.<old-kid>.retired.jwk`` (0600). It writes
the matching public JWKs and their states into the registry it is given (HANDOVER_NETWORK; by default the
development registry ``keys/private/network.json``, git-ignored, which `init_keys` first makes as a copy of the
tracked ``keys/network.json``, so development keys never edit a tracked file), editing only the ``jwks`` it must
and keeping every other member of the file as it was. Former participants (``"active": false``) get no keys.

* `init_keys`: a key for every owner that has none (development set-up).
* `rotate_key`: a new active key for one owner; the previously active key becomes ``retiring`` with
  ``retire_after`` = now + overlap (it verifies signatures made before then and never signs again).
* `revoke_key`: ``revoked`` with ``revoked_at``: signatures made from then on are refused, earlier ones stay
  verifiable (S12).

What each state allows is `service.identity.signing.PublicKeyEntry.verifies_at`; the file layout is described
in `service.identity.registry`. A running service picks up the edited file on reload
(`service.identity.registry.RegistryHolder`).

Keys are EC P-256 (ES256) with ``kid`` = RFC 7638 thumbprint. Every edit is validated as a whole registry
before it is written. Writes are atomic (temporary file, fsync, ``os.replace``); private keys are written
before the registry, so an interrupted run is repaired by the next one (a kept key whose public part is
missing from the registry is added back by `init_keys`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from joserfc import jwk

from service.identity.registry import HUB_OWNER, ODS_CODE, RegistryError, load_registry, registry_from_document
from service.identity.signing import thumbprint

_KEY_MEMBER_ORDER = ("kid", "kty", "crv", "x", "y", "alg", "use", "status", "retire_after", "revoked_at")

DEFAULT_OVERLAP = timedelta(hours=25)
# The network's participants as tracked in git, without development keys: what a new development registry
# (HANDOVER_NETWORK, by default keys/private/network.json) starts from.
NETWORK_TEMPLATE = Path("keys/network.json")
"""How long a rotated-out key keeps verifying by default: the maximum message age (24 h) plus margin."""
SAFE_OVERLAP = timedelta(hours=24, minutes=5)
"""Shorter overlaps than this (maximum message age + ``iat`` skew) earn a warning from `rotate_key`."""


class KeyLifecycleError(ValueError):
    """A rotation or revocation was refused before anything was written; the message says why."""


@dataclass(frozen=True)
class RotationReport:
    """What `rotate_key` did for `owner`: the new active key `new_kid` and its private file
    `private_key_path`; the keys made ``retiring`` (`retired_kids`) and their `retire_after`; where the
    previous private key was kept (`archived_private_path`, None if there was none on disk); `warnings`
    for the operator."""

    owner: str
    new_kid: str
    retired_kids: tuple[str, ...]
    retire_after: datetime
    private_key_path: Path
    archived_private_path: Path | None
    network_path: Path
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class RevocationReport:
    """What `revoke_key` did: `kid` of `owner` is ``revoked`` from `revoked_at` (UTC); its status before
    (`previous_status`); `changed` False when it was already revoked at exactly that instant (nothing
    written); `warnings` for the operator (e.g. the owner has no active key left)."""

    owner: str
    kid: str
    revoked_at: datetime
    previous_status: str
    changed: bool
    network_path: Path
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class KeyInitReport:
    """What `init_keys` did, by owner (ODS code or ``hub``): keys `created`, existing keys `kept`, and
    the kept keys whose public part had to be (re)added to the registry (`registered`)."""

    created: tuple[str, ...]
    kept: tuple[str, ...]
    registered: tuple[str, ...]
    network_path: Path
    keys_dir: Path


def init_keys(
    network_path: Path, keys_dir: Path, *, force: bool = False, template: Path = NETWORK_TEMPLATE
) -> KeyInitReport:
    """Make sure the hub and every current participant have a private key in `keys_dir` whose public JWK
    is registered (status active) in the registry at `network_path`. A registry that does not exist yet is
    first made as a copy of `template` (the network's tracked participants, without development keys).

    An existing ``<owner>.jwk`` is kept unless `force`. A new key is added as the owner's active key; the
    owner's previously active registered keys become ``retiring`` (verify only), or, with `force`, the
    owner's registered keys are replaced. Raises RegistryError if the registry is invalid before or after.
    """
    if not network_path.exists() and template.exists():
        load_registry(template)  # a bad template is refused before anything is written
        network_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _atomic_write(network_path, template.read_text(encoding="utf-8"), 0o644)
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
        _check_document(network_path, doc)
        _write_registry(network_path, doc)
    return KeyInitReport(tuple(created), tuple(kept), tuple(registered), network_path, keys_dir)


def rotate_key(
    network_path: Path,
    keys_dir: Path,
    owner: str,
    *,
    overlap: timedelta = DEFAULT_OVERLAP,
    now: datetime | None = None,
) -> RotationReport:
    """Give `owner` (a current participant's ODS code or ``hub``) a new active EC P-256 key.

    The new private JWK replaces ``keys_dir/<owner>.jwk`` (0600); the one it replaces is first kept as
    ``keys_dir/<owner>.<old-kid>.retired.jwk`` (0600). In the registry the new public key is added as
    ``active`` and every previously active key of `owner` becomes ``retiring`` with ``retire_after`` =
    `now` + `overlap`: it verifies signatures made before that instant and is never used to sign. Keys
    already retiring or revoked are left as they are.

    Raises KeyLifecycleError (nothing written) for a naive `now`, a negative `overlap`, or an owner that is
    not the hub or a current participant; RegistryError if the registry is invalid before or after;
    ValueError if the existing private key file is unreadable as a private JWK.
    """
    moment = datetime.now(UTC) if now is None else _aware(now, "now")
    if overlap < timedelta(0):
        raise KeyLifecycleError("overlap must not be negative")
    registry = load_registry(network_path)
    if owner != HUB_OWNER and registry.participant(owner) is None:
        where = "a former participant" if registry.former(owner) is not None else "not a participant"
        raise KeyLifecycleError(
            f"{owner!r} is {where} in {network_path}; only the hub and current participants have keys to rotate"
        )
    current = keys_dir / f"{owner}.jwk"
    old_private = load_private_jwk(keys_dir, owner) if current.exists() else None

    retire_after = moment + overlap
    doc = json.loads(network_path.read_text(encoding="utf-8"))
    registered_keys = _jwks_list(doc, owner)
    retired: list[str] = []
    for index, key in enumerate(registered_keys):
        if key.get("status") == "active":
            registered_keys[index] = _ordered({**key, "status": "retiring", "retire_after": _iso(retire_after)})
            retired.append(str(key.get("kid")))
    private = generate_private_jwk()
    registered_keys.append(public_jwk(private))
    _check_document(network_path, doc)

    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(keys_dir, 0o700)
    archived: Path | None = None
    if old_private is not None:
        archived = keys_dir / f"{owner}.{old_private['kid']}.retired.jwk"
        _atomic_write(archived, current.read_text(encoding="utf-8"), 0o600)
    _write_private(current, private)
    _write_registry(network_path, doc)

    warnings: list[str] = []
    if overlap < SAFE_OVERLAP:
        warnings.append(
            f"the overlap ({overlap}) is shorter than the maximum message age plus clock skew ({SAFE_OVERLAP}): "
            "messages signed with the old key shortly before the rotation may be refused"
        )
    if owner == HUB_OWNER:
        warnings.append(
            "the running service keeps signing with the old hub key until it reloads the registry "
            "(SIGHUP or POST /ops/reload-registry); from then on it signs with the new one, no restart needed"
        )
    return RotationReport(
        owner=owner,
        new_kid=str(private["kid"]),
        retired_kids=tuple(retired),
        retire_after=retire_after,
        private_key_path=current,
        archived_private_path=archived,
        network_path=network_path,
        warnings=tuple(warnings),
    )


def revoke_key(network_path: Path, owner: str, kid: str, *, at: datetime) -> RevocationReport:
    """Mark `owner`'s key `kid` ``revoked`` from `at` (timezone-aware; stored in UTC).

    Signatures made at or after `at` no longer verify; earlier ones still do, so messages accepted before
    the revocation stay provable (S12). A key that was retiring keeps its ``retire_after``. Revoking an
    already revoked key may only move ``revoked_at`` earlier (the same instant again changes nothing).
    Revoking the owner's only active key is allowed, with a warning in the report: the owner cannot sign
    until ``handover keys rotate``. The return value may be ignored.

    Raises KeyLifecycleError (nothing written) for a naive `at`, an owner that is neither the hub nor listed
    in the registry, a `kid` that is not one of the owner's keys, or a later time for a revoked key;
    RegistryError if the registry is invalid before or after.
    """
    revoked_at = _aware(at, "at").astimezone(UTC)
    registry = load_registry(network_path)
    if owner != HUB_OWNER and owner not in registry.participants:
        raise KeyLifecycleError(f"{owner!r} is neither the hub nor a participant listed in {network_path}")
    doc = json.loads(network_path.read_text(encoding="utf-8"))
    registered_keys = _jwks_list(doc, owner)
    index = next((i for i, key in enumerate(registered_keys) if key.get("kid") == kid), None)
    if index is None:
        elsewhere = registry.key(kid)
        hint = f" (it is a key of {elsewhere.owner_ods})" if elsewhere is not None else ""
        raise KeyLifecycleError(f"{owner} has no registered key with kid {kid!r}{hint}")
    key = registered_keys[index]
    previous_status = str(key.get("status"))
    changed = True
    if previous_status == "revoked":
        earlier = datetime.fromisoformat(str(key["revoked_at"]))
        if revoked_at > earlier:
            raise KeyLifecycleError(
                f"{kid} is already revoked at {_iso(earlier)}; a revocation can only be moved earlier"
            )
        changed = revoked_at != earlier
    if changed:
        registered_keys[index] = _ordered({**key, "status": "revoked", "revoked_at": _iso(revoked_at)})
        _check_document(network_path, doc)
        _write_registry(network_path, doc)

    warnings: list[str] = []
    if not any(k.get("status") == "active" for k in registered_keys):
        warnings.append(f"{owner} has no active key left and cannot sign until `handover keys rotate {owner}`")
    if revoked_at > datetime.now(UTC):
        warnings.append(f"revoked_at {_iso(revoked_at)} is in the future: signatures made until then still verify")
    return RevocationReport(
        owner=owner,
        kid=kid,
        revoked_at=revoked_at,
        previous_status=previous_status,
        changed=changed,
        network_path=network_path,
        warnings=tuple(warnings),
    )


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


def _check_document(network_path: Path, doc: dict[str, Any]) -> None:
    try:
        registry_from_document(doc)
    except RegistryError as err:
        raise RegistryError(f"{network_path}: refusing to write an invalid registry: {err}") from err


def _aware(moment: datetime, name: str) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise KeyLifecycleError(f"{name} must be a timezone-aware date-time (e.g. 2026-11-24T09:00:00Z)")
    return moment


def _iso(moment: datetime) -> str:
    """ISO-8601 in UTC with ``Z``, e.g. ``2026-11-24T09:00:00Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


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
