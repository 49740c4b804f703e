"""The key-encryption key (KEK) that wraps every payload's data key, behind an interface a KMS or HSM can implement.

`KeyEncryptionKey` is what the rest of the service uses: `wrap` a data key under the current KEK (its id is
stored beside the wrapped key), `unwrap` one under the KEK it names, `check` that the KEK can be reached. Any
of them raises `KeyUnavailableError` when it cannot: callers fail closed (refuse to accept, pause the relay).

`FileKeyring` is the development implementation: a JSON file (``HANDOVER_KEK_FILE``, default
``<keys dir>/kek.key``, mode 0600) holding one active AES-256 key and any retired ones kept until every data
key has been re-wrapped (`service.crypto.rotation`)::

    {"format": "handover-kek-v1", "active": "kek-…", "keys": {"kek-…": "<base64 of 32 bytes>", …}}

A key's id is derived from its bytes, so a different key can never pass for a known id. The file is checked
(``stat``) before every operation and re-read when it changes: a rotation is picked up at once, and a file that
disappears makes the keyring unavailable at once (its keys are forgotten) rather than silently going on with
keys that would be lost at the next restart.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FILE_FORMAT = "handover-kek-v1"
KEK_BYTES = 32
_NONCE_BYTES = 12
_WRAP_AAD = b"handover-data-key"


class KeyUnavailableError(Exception):
    """The key-encryption key cannot be used right now (missing, unreadable, unknown id, KMS down)."""


class UnwrapError(Exception):
    """A wrapped data key does not authenticate under its KEK: it was altered or moved to another row."""


@dataclass(frozen=True)
class WrappedKey:
    """A data key wrapped under the KEK `kek_id`."""

    kek_id: str
    wrapped: bytes


@runtime_checkable
class KeyEncryptionKey(Protocol):
    """Wraps and unwraps data keys. `context` (the message id) is bound into the wrapping, so a wrapped key only
    unwraps for the row it was made for (else UnwrapError). Every method raises KeyUnavailableError when the KEK
    cannot be used."""

    @property
    def kek_id(self) -> str:
        """The id of the KEK that `wrap` uses now."""
        ...

    async def wrap(self, data_key: bytes, context: bytes) -> WrappedKey: ...

    async def unwrap(self, wrapped: WrappedKey, context: bytes) -> bytes: ...

    async def check(self) -> None:
        """Return if the current KEK can be used, else raise KeyUnavailableError."""
        ...


def kek_id_for(key: bytes) -> str:
    """The id of a KEK: derived from its bytes (a one-way digest), never chosen."""
    return "kek-" + hashlib.sha256(b"handover-kek-id\x00" + key).hexdigest()[:24]


@dataclass(frozen=True)
class _Loaded:
    stamp: tuple[int, int, int]
    active: str
    keys: dict[str, bytes]
    ciphers: dict[str, AESGCM]  # one per key, made when the file is read rather than per data key


class FileKeyring:
    """A `KeyEncryptionKey` kept in a local file (see the module docstring). Argument: the file's path."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._path_text = os.fspath(self.path)  # os.stat on a str: the per-operation check without pathlib's cost
        self._loaded: _Loaded | None = None

    @property
    def kek_id(self) -> str:
        return self._current().active

    def kek_ids(self) -> tuple[str, ...]:
        """Every KEK id in the file (the active one first)."""
        loaded = self._current()
        return (loaded.active, *sorted(k for k in loaded.keys if k != loaded.active))

    async def wrap(self, data_key: bytes, context: bytes) -> WrappedKey:
        loaded = self._current()
        nonce = os.urandom(_NONCE_BYTES)
        sealed = loaded.ciphers[loaded.active].encrypt(nonce, data_key, _aad(loaded.active, context))
        return WrappedKey(loaded.active, nonce + sealed)

    async def unwrap(self, wrapped: WrappedKey, context: bytes) -> bytes:
        cipher = self._current().ciphers.get(wrapped.kek_id)
        if cipher is None:
            raise KeyUnavailableError("the data key was wrapped under a KEK this keyring does not hold")
        nonce, sealed = wrapped.wrapped[:_NONCE_BYTES], wrapped.wrapped[_NONCE_BYTES:]
        try:
            return cipher.decrypt(nonce, sealed, _aad(wrapped.kek_id, context))
        except InvalidTag:
            raise UnwrapError("the wrapped data key does not authenticate under its KEK") from None

    async def check(self) -> None:
        self._current()

    def _current(self) -> _Loaded:
        try:
            info = os.stat(self._path_text)
        except OSError:
            self._loaded = None
            raise KeyUnavailableError("the key-encryption key file is missing or unreadable") from None
        stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
        if self._loaded is None or self._loaded.stamp != stamp:
            self._loaded = None
            active, keys = read_kek_file(self.path)
            self._loaded = _Loaded(stamp, active, keys, {kek_id: AESGCM(key) for kek_id, key in keys.items()})
        return self._loaded


def _aad(kek_id: str, context: bytes) -> bytes:
    return _WRAP_AAD + b"\x00" + kek_id.encode("ascii") + b"\x00" + context


def read_kek_file(path: Path) -> tuple[str, dict[str, bytes]]:
    """The active KEK id and every key in the file; KeyUnavailableError if it is missing or malformed."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise KeyUnavailableError("the key-encryption key file is missing, unreadable or not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FILE_FORMAT or not isinstance(doc.get("keys"), dict):
        raise KeyUnavailableError(f"the key-encryption key file is not in the {FILE_FORMAT} format")
    keys: dict[str, bytes] = {}
    for kek_id, encoded in doc["keys"].items():
        try:
            key = base64.b64decode(str(encoded), validate=True)
        except (binascii.Error, ValueError):
            raise KeyUnavailableError("a key in the key-encryption key file is not base64") from None
        if len(key) != KEK_BYTES or kek_id_for(key) != kek_id:
            raise KeyUnavailableError("a key in the key-encryption key file has the wrong length or id")
        keys[kek_id] = key
    active = doc.get("active")
    if not isinstance(active, str) or active not in keys:
        raise KeyUnavailableError("the key-encryption key file names no active key it holds")
    return active, keys


def create_kek_file(path: Path) -> str:
    """Write a new KEK file with one fresh random key (mode 0600, directory 0700); returns its id.

    Refuses (FileExistsError) to replace an existing file: that would make every stored payload unreadable.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} already exists; use `handover keys rotate-kek` to change the KEK")
    key = AESGCM.generate_key(bit_length=256)
    kek_id = kek_id_for(key)
    write_kek_file(path, kek_id, {kek_id: key}, exclusive=True)
    return kek_id


def add_active_key(path: Path) -> tuple[str, tuple[str, ...]]:
    """Add a fresh key to the file and make it the active one; returns (new id, the now-retired ids).

    The retired keys stay in the file (unwrap only) until `remove_keys` after every data key is re-wrapped.
    """
    _, keys = read_kek_file(path)
    key = AESGCM.generate_key(bit_length=256)
    kek_id = kek_id_for(key)
    write_kek_file(path, kek_id, {**keys, kek_id: key})
    return kek_id, tuple(sorted(keys))


def remove_keys(path: Path, kek_ids: set[str]) -> None:
    """Drop retired keys from the file (never the active one)."""
    active, keys = read_kek_file(path)
    if active in kek_ids:
        raise ValueError("the active KEK cannot be removed")
    write_kek_file(path, active, {k: v for k, v in keys.items() if k not in kek_ids})


def write_kek_file(path: Path, active: str, keys: dict[str, bytes], *, exclusive: bool = False) -> None:
    """Atomically replace the file (temporary file in the same directory, fsync, rename), mode 0600.

    `exclusive`: only create it; FileExistsError if it exists, even when another process (a second worker
    starting at the same moment) creates it first: two first keys would leave one process's payloads unreadable.
    """
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    doc = {
        "format": FILE_FORMAT,
        "active": active,
        "keys": {kek_id: base64.b64encode(key).decode("ascii") for kek_id, key in sorted(keys.items())},
    }
    fd, tmp = tempfile.mkstemp(prefix=".kek-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(doc, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            os.link(tmp, path)  # fails if the name exists, unlike rename
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
