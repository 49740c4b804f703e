"""The network registry (``keys/network.json``): who is in the network and which public keys are theirs.

This module owns reading and strictly validating the registry file into immutable `Registry` objects, the
in-memory key lookup by ``kid`` that signature verification uses (`Registry.key`), and hot reload:
`RegistryHolder` keeps the current `Registry` and swaps in a new one only when the file loads and validates
completely (``SIGHUP`` / an ops endpoint call `RegistryHolder.reload`). Private keys, and the key lifecycle
commands that edit this file (``handover keys init|rotate|revoke``), are in `service.identity.keystore`.

File layout (UTF-8 JSON, one object; unknown members are refused so typos fail loudly)::

    {
      "network": "east-anglia-liver-mets",
      "description": "optional free text",
      "hub": {"name": "Handover hub", "jwks": {"keys": [KEY, ...]}},
      "participants": {
        "RGT": {
          "name": "Cambridge University Hospitals NHS Foundation Trust (Addenbrooke's)",
          "role": "centre",                 # "centre" | "referrer"
          "active": true,                   # optional, default true; false = listed but not in the network
          "note": "optional free text",
          "endpoint": null,                 # optional push base URL (http/https) or null for pull only
          "mesh_mailbox": "RM1HANDOVER",    # optional MESH mailbox: its messages arrive by MESH, and without an
                                            # endpoint it is delivered to through MESH (service/mesh/)
          "jwks": {"keys": [KEY, ...]},
          "cert_fingerprints": []           # SHA-256 of the client certificate DER, 64 lowercase hex
        },
        ...
      }
    }

    KEY = {"kid": RFC 7638 thumbprint, "kty": "EC", "crv": "P-256", "x": ..., "y": ..., "alg": "ES256",
           "use": "sig", "status": "active" | "retiring" | "revoked",
           "retire_after": ISO-8601 (retiring, or revoked after retiring; optional),
           "revoked_at": ISO-8601 (revoked only)}
          or the same with "kty": "OKP", "crv": "Ed25519", no "y", "alg": "Ed25519".
    ISO-8601 instants must carry a time zone (e.g. "2026-11-24T09:00:00Z").

Participants are keyed by ODS code (``^[A-Z0-9]{3,5}$``). Exactly one current centre is required.

Former participants (``"active": false``, e.g. the old out-of-network pathways RN5 and RWE) stay listed for
history and governance reporting but are not in the network: `participant`, `is_participant`,
`referrers` and `key` ignore them, so they can neither authenticate, sign, send nor receive. `former`
and `former_participants` name them (for clearer refusals and reports).

Key states (`PublicKeyEntry.verifies_at` decides them for a signing time, i.e. ``iat`` / ``Bundle.timestamp``):

* ``active`` signs and verifies. The hub has at most one active key; a participant normally one.
* ``retiring`` (after ``handover keys rotate``) never signs, and verifies only signatures made before its
  ``retire_after`` (= rotation time + the overlap, which should be at least the maximum message age plus
  clock skew). After ``retire_after`` it verifies nothing; it stays listed so history stays readable. A
  retiring key without ``retire_after`` (written by ``keys init`` without a rotation) has no end date.
* ``revoked`` (``handover keys revoke``) verifies only signatures made before ``revoked_at`` (and before
  ``retire_after`` if it had one), so a message accepted before revocation stays provable (S12).

`Registry.key` returns keys in every state; deciding what a state allows is the caller's job.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from threading import Lock
from types import MappingProxyType
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from joserfc import jwk
from joserfc.errors import JoseError

from service.identity.signing import SUPPORTED_ALGS, PublicKeyEntry, thumbprint
from service.strictjson import unique_members

HUB_OWNER = "hub"
ODS_CODE = re.compile(r"[A-Z0-9]{3,5}")  # used with fullmatch
ROLES = frozenset({"centre", "referrer"})
KEY_STATUSES = frozenset({"active", "retiring", "revoked"})

_TOP_FIELDS = frozenset({"network", "description", "hub", "participants"})
_HUB_FIELDS = frozenset({"name", "jwks"})
_PARTICIPANT_FIELDS = frozenset(
    {"name", "role", "active", "note", "endpoint", "jwks", "cert_fingerprints", "mesh_mailbox"}
)
_MESH_MAILBOX = re.compile(r"[A-Z0-9]{3,20}")
_KEY_FIELDS = frozenset({"kid", "kty", "crv", "x", "y", "alg", "use", "status", "retire_after", "revoked_at"})
_KEY_SHAPES = {  # alg -> (kty, crv, members holding 32-byte base64url coordinates)
    "ES256": ("EC", "P-256", ("x", "y")),
    "Ed25519": ("OKP", "Ed25519", ("x",)),
}
_B64URL_32 = re.compile(r"[A-Za-z0-9_-]{43}")
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")

Role = Literal["centre", "referrer"]


class RegistryError(ValueError):
    """The registry file is missing, unreadable or breaks a rule; the message says where and which."""


@dataclass(frozen=True)
class Participant:
    """One organisation listed in the network: ODS code, name, role, optional push endpoint, its public
    signing keys, pinned client-certificate fingerprints, and whether it is currently in the network."""

    ods: str
    name: str
    role: Role
    endpoint: str | None
    keys: tuple[PublicKeyEntry, ...]
    cert_fingerprints: tuple[str, ...]
    active: bool = True
    mesh_mailbox: str | None = None  # reached through MESH (service/mesh/) when it has no push endpoint


@dataclass(frozen=True)
class Registry:
    """The whole network, immutable: participants by ODS code (current and former) and the hub's keys."""

    participants: Mapping[str, Participant]
    hub_keys: tuple[PublicKeyEntry, ...]
    network: str = ""
    hub_name: str = "Handover hub"
    _by_kid: Mapping[str, PublicKeyEntry] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_kid: dict[str, PublicKeyEntry] = {}
        current = [p for p in self.participants.values() if p.active]
        for entry in [*self.hub_keys, *(k for p in current for k in p.keys)]:
            if entry.kid in by_kid:
                raise RegistryError(f"kid {entry.kid} is registered twice")
            by_kid[entry.kid] = entry
        object.__setattr__(self, "participants", MappingProxyType(dict(self.participants)))
        object.__setattr__(self, "_by_kid", MappingProxyType(by_kid))

    def participant(self, ods: str) -> Participant | None:
        """The current participant with this ODS code; None if unknown or former."""
        found = self.participants.get(ods)
        return found if found is not None and found.active else None

    def is_participant(self, ods: str) -> bool:
        """True only for organisations currently in the network (they may send, receive and call)."""
        return self.participant(ods) is not None

    def former(self, ods: str) -> Participant | None:
        """A listed organisation that is no longer in the network (``"active": false``); else None."""
        found = self.participants.get(ods)
        return found if found is not None and not found.active else None

    def former_participants(self) -> list[Participant]:
        """Listed organisations no longer in the network, in registry-file order."""
        return [p for p in self.participants.values() if not p.active]

    def key(self, kid: str) -> PublicKeyEntry | None:
        """Any-status key of a current participant or of the hub (owner ``hub``), by kid; in memory only."""
        return self._by_kid.get(kid)

    def hub_key(self, kid: str) -> PublicKeyEntry | None:
        """One of the hub's own keys (receipts, checkpoints), by kid."""
        entry = self._by_kid.get(kid)
        return entry if entry is not None and entry.owner_ods == HUB_OWNER else None

    def active_hub_key(self) -> PublicKeyEntry:
        """The hub's one active key; RegistryError if there is none yet (run ``handover keys init``)."""
        for entry in self.hub_keys:
            if entry.status == "active":
                return entry
        raise RegistryError("the hub has no active key; run `handover keys init`")

    def centre(self) -> Participant:
        """The surgical centre (load_registry guarantees exactly one current centre)."""
        for participant in self.participants.values():
            if participant.active and participant.role == "centre":
                return participant
        raise RegistryError("the network has no current centre")

    def referrers(self) -> list[Participant]:
        """Current referring trusts, in registry-file order."""
        return [p for p in self.participants.values() if p.active and p.role == "referrer"]


class RegistryReader(Protocol):
    """What request handling reads from the registry; both `Registry` and `RegistryHolder` provide it, so
    code typed against this follows hot reloads when given a holder."""

    def participant(self, ods: str) -> Participant | None: ...

    def is_participant(self, ods: str) -> bool: ...

    def key(self, kid: str) -> PublicKeyEntry | None: ...

    def hub_key(self, kid: str) -> PublicKeyEntry | None: ...


@dataclass(frozen=True)
class ReloadResult:
    """The outcome of `RegistryHolder.reload`. `ok` False: the file did not load, `error` says why (naming
    the file and element) and the previous registry is still in service. `ok` True: the new registry is in
    service; `added`, `removed` and `changed` list the kids that appeared, disappeared, or changed owner,
    status, ``retire_after``, ``revoked_at`` or usability (their owner left or rejoined the network)."""

    ok: bool
    path: Path
    error: str | None = None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    def describe(self) -> str:
        """One log line without secrets: the outcome and the key changes."""
        if not self.ok:
            return f"network registry NOT reloaded; the previous one stays in service: {self.error}"
        changes = (("added", self.added), ("removed", self.removed), ("changed", self.changed))
        parts = [f"{name} {', '.join(kids)}" for name, kids in changes if kids]
        return f"network registry reloaded from {self.path}" + (f" ({'; '.join(parts)})" if parts else "")


class RegistryHolder:
    """The registry in service, swapped whole on `reload`; readers never see a half-loaded registry.

    Pass the holder's bound methods where a lookup is needed (``holder.key`` as a `KeyLookup`,
    ``holder.is_participant``): they read `current` on every call and so follow reloads. Do not pass
    ``holder.current.key``, which would pin the registry of that moment. Reloads are serialised by a lock;
    readers take none (the swap is a single reference assignment).
    """

    def __init__(self, registry: Registry) -> None:
        self._current = registry
        self._lock = Lock()

    @classmethod
    def from_file(cls, path: Path) -> RegistryHolder:
        """A holder of the registry at `path`; RegistryError (see `load_registry`) if it does not load."""
        return cls(load_registry(path))

    @property
    def current(self) -> Registry:
        """The registry in service now."""
        return self._current

    def reload(self, path: Path) -> ReloadResult:
        """Load and validate `path`; swap it in only if that succeeds completely.

        Never raises for a bad file: when it does not load (unreadable, not JSON, a rule broken) the previous
        registry stays in service and the result carries ``ok=False`` and the error message.
        """
        with self._lock:
            try:
                fresh = load_registry(path)
            except RegistryError as err:
                return ReloadResult(ok=False, path=path, error=str(err))
            except (ValueError, TypeError, RecursionError) as err:  # not expected; still never half-loaded
                return ReloadResult(ok=False, path=path, error=f"{path}: cannot be loaded ({err.__class__.__name__})")
            previous, self._current = self._current, fresh
        added, removed, changed = _key_changes(previous, fresh)
        return ReloadResult(ok=True, path=path, added=added, removed=removed, changed=changed)

    def participant(self, ods: str) -> Participant | None:
        """`Registry.participant` of the current registry."""
        return self._current.participant(ods)

    def is_participant(self, ods: str) -> bool:
        """`Registry.is_participant` of the current registry."""
        return self._current.is_participant(ods)

    def key(self, kid: str) -> PublicKeyEntry | None:
        """`Registry.key` of the current registry (usable as a `service.identity.signing.KeyLookup`)."""
        return self._current.key(kid)

    def hub_key(self, kid: str) -> PublicKeyEntry | None:
        """`Registry.hub_key` of the current registry."""
        return self._current.hub_key(kid)


def _key_changes(old: Registry, new: Registry) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Kids added, removed, or changed (owner, status, retire_after, revoked_at, or usable at all: a
    participant leaving or rejoining the network) between two registries."""

    def listed(registry: Registry) -> dict[str, PublicKeyEntry]:
        entries = [*registry.hub_keys, *(k for p in registry.participants.values() for k in p.keys)]
        return {entry.kid: entry for entry in entries}

    def state(registry: Registry, entry: PublicKeyEntry) -> tuple[object, ...]:
        usable = registry.key(entry.kid) is not None
        return entry.owner_ods, entry.status, entry.retire_after, entry.revoked_at, usable

    before, after = listed(old), listed(new)
    return (
        tuple(kid for kid in after if kid not in before),
        tuple(kid for kid in before if kid not in after),
        tuple(kid for kid, entry in after.items() if kid in before and state(new, entry) != state(old, before[kid])),
    )


def load_registry(path: Path) -> Registry:
    """Read and strictly validate the registry at `path` (layout in the module docstring).

    Raises RegistryError naming the file and the offending element: unreadable or non-JSON file, duplicate
    JSON keys, unknown members, a bad ODS code or role, not exactly one current centre, a JWK whose kid is
    not its RFC 7638 thumbprint or that carries private material, an alg other than ES256/Ed25519 or not
    matching the key type, a bad status, a revoked key without revoked_at, revoked_at or retire_after
    without a time zone or on a key whose status does not allow it, or a kid used twice.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise RegistryError(
            f"{path}: cannot read the network registry: there is no such file (`handover keys init` makes the "
            "development one; HANDOVER_NETWORK names another)"
        ) from err
    except (OSError, UnicodeError) as err:
        raise RegistryError(f"{path}: cannot read the network registry ({err.__class__.__name__})") from err
    try:
        doc = json.loads(text, object_pairs_hook=unique_members)
    except ValueError as err:
        raise RegistryError(f"{path}: not valid JSON ({err})") from err
    try:
        return registry_from_document(doc)
    except RegistryError as err:
        raise RegistryError(f"{path}: {err}") from err


def registry_from_document(doc: object) -> Registry:
    """Validate an already-parsed registry document (see `load_registry`)."""
    top = _object(doc, "the registry", _TOP_FIELDS)
    network = top.get("network", "")
    if not isinstance(network, str):
        raise RegistryError("network must be a string")
    hub = _object(top.get("hub"), "hub", _HUB_FIELDS)
    hub_name = _text(hub.get("name", "Handover hub"), "hub.name")
    hub_keys = _keys(hub.get("jwks", {"keys": []}), "hub.jwks", HUB_OWNER)
    if sum(1 for k in hub_keys if k.status == "active") > 1:
        raise RegistryError("hub.jwks: at most one hub key may be active")

    raw_participants = top.get("participants")
    if not isinstance(raw_participants, dict) or not raw_participants:
        raise RegistryError("participants must be a non-empty object keyed by ODS code")
    participants = {ods: _participant(ods, value) for ods, value in raw_participants.items()}
    centres = [p.ods for p in participants.values() if p.active and p.role == "centre"]
    if len(centres) != 1:
        raise RegistryError(f"exactly one current centre is required, found {len(centres)}")
    seen: dict[str, str] = {}
    for owner, entry in [
        *((HUB_OWNER, k) for k in hub_keys),
        *((p.ods, k) for p in participants.values() for k in p.keys),
    ]:
        if entry.kid in seen:
            raise RegistryError(f"kid {entry.kid} is registered for both {seen[entry.kid]} and {owner}")
        seen[entry.kid] = owner
    return Registry(participants=participants, hub_keys=hub_keys, network=network, hub_name=hub_name)


def _participant(ods: object, value: object) -> Participant:
    if not isinstance(ods, str) or not ODS_CODE.fullmatch(ods) or ods.lower() == HUB_OWNER:
        raise RegistryError(f"participants: {ods!r} is not an ODS code (3-5 of A-Z, 0-9; not HUB)")
    where = f"participants.{ods}"
    raw = _object(value, where, _PARTICIPANT_FIELDS)
    role = raw.get("role")
    if role not in ROLES:
        raise RegistryError(f"{where}.role must be one of {sorted(ROLES)}")
    active = raw.get("active", True)
    if not isinstance(active, bool):
        raise RegistryError(f"{where}.active must be true or false")
    if "note" in raw:
        _text(raw["note"], f"{where}.note")
    endpoint = raw.get("endpoint")
    if endpoint is not None:
        parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise RegistryError(f"{where}.endpoint must be an http(s) base URL or null")
    fingerprints = raw.get("cert_fingerprints", [])
    if not isinstance(fingerprints, list) or not all(
        isinstance(f, str) and _FINGERPRINT.fullmatch(f) for f in fingerprints
    ):
        raise RegistryError(f"{where}.cert_fingerprints must be a list of SHA-256 hex digests (64 lowercase hex)")
    mesh_mailbox = raw.get("mesh_mailbox")
    if mesh_mailbox is not None and not (isinstance(mesh_mailbox, str) and _MESH_MAILBOX.fullmatch(mesh_mailbox)):
        raise RegistryError(f"{where}.mesh_mailbox must be a MESH mailbox id (3-20 of A-Z, 0-9) or absent")
    return Participant(
        ods=ods,
        name=_text(raw.get("name"), f"{where}.name"),
        role="centre" if role == "centre" else "referrer",
        endpoint=endpoint,
        keys=_keys(raw.get("jwks", {"keys": []}), f"{where}.jwks", ods),
        cert_fingerprints=tuple(fingerprints),
        active=active,
        mesh_mailbox=mesh_mailbox,
    )


def _keys(value: object, where: str, owner: str) -> tuple[PublicKeyEntry, ...]:
    jwks = _object(value, where, frozenset({"keys"}))
    keys = jwks.get("keys")
    if not isinstance(keys, list):
        raise RegistryError(f"{where}.keys must be a list")
    return tuple(_key(item, f"{where}.keys[{i}]", owner) for i, item in enumerate(keys))


def _key(value: object, where: str, owner: str) -> PublicKeyEntry:
    if isinstance(value, dict) and "d" in value:
        raise RegistryError(f"{where} holds private key material (d); the registry takes public keys only")
    raw = _object(value, where, _KEY_FIELDS)
    alg = raw.get("alg")
    if alg not in SUPPORTED_ALGS:
        raise RegistryError(f"{where}.alg must be one of {sorted(SUPPORTED_ALGS)}")
    kty, crv, coordinates = _KEY_SHAPES[str(alg)]
    if raw.get("kty") != kty or raw.get("crv") != crv:
        raise RegistryError(f"{where}: alg {alg} needs kty {kty} and crv {crv}")
    for name in ("x", "y"):
        present = name in raw
        if present != (name in coordinates) or (present and not _B64URL_32.fullmatch(str(raw[name]))):
            raise RegistryError(f"{where}.{name}: a {crv} key needs {' and '.join(coordinates)} as 32-byte base64url")
    if raw.get("use", "sig") != "sig":
        raise RegistryError(f'{where}.use must be "sig"')
    kid = raw.get("kid")
    if kid != thumbprint(raw):
        raise RegistryError(f"{where}.kid must be the RFC 7638 thumbprint of the key")
    status = raw.get("status")
    if status not in KEY_STATUSES:
        raise RegistryError(f"{where}.status must be one of {sorted(KEY_STATUSES)}")
    revoked_at = _revoked_at(raw.get("revoked_at"), status == "revoked", where)
    retire_after = _retire_after(raw.get("retire_after"), str(status), where)
    public = {name: raw[name] for name in ("kty", "crv", *coordinates)}
    _check_public_key_imports(public, str(alg), where)
    public_jwk = MappingProxyType({"kid": kid, **public, "alg": alg, "use": "sig"})
    return PublicKeyEntry(
        kid=str(kid),
        alg=str(alg),
        owner_ods=owner,
        status=str(status),
        revoked_at=revoked_at,
        public_jwk=public_jwk,
        retire_after=retire_after,
    )


def _revoked_at(value: object, revoked: bool, where: str) -> datetime | None:
    if value is None:
        if revoked:
            raise RegistryError(f"{where}: a revoked key needs revoked_at (ISO-8601 with a time zone)")
        return None
    if not revoked:
        raise RegistryError(f"{where}.revoked_at is only allowed when status is revoked")
    return _instant(value, f"{where}.revoked_at")


def _retire_after(value: object, status: str, where: str) -> datetime | None:
    if value is None:
        return None
    if status == "active":
        raise RegistryError(f"{where}.retire_after is only allowed when status is retiring or revoked")
    return _instant(value, f"{where}.retire_after")


def _instant(value: object, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise RegistryError(f"{where} must be an ISO-8601 date-time with a time zone")
    return moment


def _check_public_key_imports(public: Mapping[str, Any], alg: str, where: str) -> None:
    """The coordinates must make a real public key (e.g. an EC point on P-256)."""
    try:
        _ = jwk.import_key({**public, "alg": alg}).public_key
    except (JoseError, ValueError, TypeError) as err:
        raise RegistryError(f"{where}: not a valid {alg} public key") from err


def _object(value: object, where: str, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RegistryError(f"{where} must be a JSON object")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise RegistryError(f"{where}: unknown member(s) {', '.join(unknown)}")
    return value


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RegistryError(f"{where} must be a non-empty string")
    return value
