"""Audit checkpoints as C2SP signed notes (c2sp.org/tlog-checkpoint, c2sp.org/signed-note), and their signer.

A checkpoint note is ``<origin>\\n<tree size>\\n<base64 root>\\n``, a blank line, and signature lines
``— <key name> <base64(4-byte key ID || signature)>``. The key name is the origin. The hub key is ES256, so
signatures are signed-note type 0x02, "ECDSA signatures as implemented by transparency-dev/witness": an
ASN.1 DER ECDSA signature over SHA-256 of the note text, key ID = the first 4 bytes of SHA-256 of the DER
SubjectPublicKeyInfo of the P-256 public key. An Ed25519 hub key would sign type 0x01 (key ID =
SHA-256(name || 0x0A || 0x01 || key)[:4]). The note carries no timestamp line (extension lines are NOT
RECOMMENDED and CONTRACT.md lists exactly origin, size and root); the hub's signing time is stored beside it.

`CheckpointSigner` signs a new checkpoint when the log has grown and either `interval_seconds` have passed
since this signer last signed or `max_entries` entries arrived, and never re-signs a stored size with another
root (see `service.store.checkpoints.insert_checkpoint`). Stored times never go backwards.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from service.auditlog.tree import AuditIntegrityError, AuditTree
from service.background import run_forever
from service.clock import Clock, utc_now
from service.signing import PublicKeyEntry, thumbprint
from service.store import audit_reads, db
from service.store import checkpoints as store
from service.store.checkpoints import ConflictingCheckpointError, StoredCheckpoint

log = logging.getLogger("handover.audit.checkpoints")

ORIGIN_PREFIX = "handover.nhs.example/audit"
SIG_ED25519 = 0x01
SIG_ECDSA = 0x02
MAX_SIGNATURES = 32
_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")
_B64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


class CheckpointError(ValueError):
    """A note that is not a well-formed checkpoint, or whose signatures do not verify with the keys given."""


def log_origin(network: str) -> str:
    """The log's origin (and key name) for a network registry's ``network`` name."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", network).strip("-")
    return f"{ORIGIN_PREFIX}/{name}" if name else ORIGIN_PREFIX


def checkpoint_text(origin: str, tree_size: int, root: bytes) -> str:
    return f"{origin}\n{tree_size}\n{base64.b64encode(root).decode('ascii')}\n"


@dataclass(frozen=True)
class NoteKey:
    """A public key as signed notes name it: key name, signature type, 4-byte key ID; `kid` is its JWK kid."""

    name: str
    sig_type: int
    key_id: bytes
    kid: str
    public_key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

    def verifies(self, text: bytes, signature: bytes) -> bool:
        try:
            if isinstance(self.public_key, ec.EllipticCurvePublicKey):
                self.public_key.verify(signature, text, ec.ECDSA(hashes.SHA256()))
            else:
                self.public_key.verify(signature, text)
        except InvalidSignature:
            return False
        return True


def note_key(name: str, jwk: Mapping[str, Any]) -> NoteKey:
    """The signed-note identity of a public (or private) ES256 P-256 or Ed25519 JWK under key `name`."""
    if not name or any(c.isspace() or c == "+" for c in name):
        raise ValueError("a key name must be non-empty, without spaces or '+'")
    kid = thumbprint(jwk)
    if jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
        x, y = (int.from_bytes(_b64url(str(jwk[c])), "big") for c in ("x", "y"))
        public = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
        spki = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return NoteKey(name, SIG_ECDSA, hashlib.sha256(spki).digest()[:4], kid, public)
    if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
        raw = _b64url(str(jwk["x"]))
        key_id = hashlib.sha256(name.encode() + b"\n" + bytes([SIG_ED25519]) + raw).digest()[:4]
        return NoteKey(name, SIG_ED25519, key_id, kid, ed25519.Ed25519PublicKey.from_public_bytes(raw))
    raise ValueError("checkpoint keys must be EC P-256 (ES256) or Ed25519")


Keyring = Mapping[tuple[str, bytes], tuple[NoteKey, PublicKeyEntry]]
"""Known note keys by (key name, 4-byte key ID), each with its registry entry (for its status)."""


def hub_note_keys(name: str, entries: Iterable[PublicKeyEntry]) -> Keyring:
    """The hub's registered keys (any status) under key name `name`."""
    keys: dict[tuple[str, bytes], tuple[NoteKey, PublicKeyEntry]] = {}
    for entry in entries:
        key = note_key(name, entry.public_jwk)
        keys[(key.name, key.key_id)] = (key, entry)
    return keys


class NoteSigner:
    """Signs checkpoint notes with the hub's private JWK under key name `origin`."""

    def __init__(self, private_jwk: Mapping[str, Any], origin: str) -> None:
        self.origin = origin
        self.key = note_key(origin, private_jwk)
        secret = _b64url(str(private_jwk["d"]))
        self._private: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
        if self.key.sig_type == SIG_ECDSA:
            self._private = ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256R1())
        else:
            self._private = ed25519.Ed25519PrivateKey.from_private_bytes(secret)

    @property
    def kid(self) -> str:
        return self.key.kid

    def sign(self, tree_size: int, root: bytes) -> str:
        """The complete signed note for a tree of `tree_size` leaves with `root`."""
        text = checkpoint_text(self.origin, tree_size, root)
        if isinstance(self._private, ec.EllipticCurvePrivateKey):
            signature = self._private.sign(text.encode(), ec.ECDSA(hashes.SHA256()))
        else:
            signature = self._private.sign(text.encode())
        line = base64.b64encode(self.key.key_id + signature).decode("ascii")
        return f"{text}\n\u2014 {self.key.name} {line}\n"


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint whose signature verified: origin, size, root, and the kids of the keys that signed it."""

    origin: str
    tree_size: int
    root_hash: bytes
    signed_by: tuple[str, ...]
    text: str


def parse_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """Split a signed note into its text (ending in a newline) and its (key name, decoded signature) lines."""
    if any(ord(c) < 0x20 and c != "\n" for c in note) or not note.endswith("\n"):
        raise CheckpointError("a signed note is UTF-8 text ending in a newline, without control characters")
    split = note.rfind("\n\n")
    if split < 0:
        raise CheckpointError("a signed note needs a blank line before its signatures")
    text, lines = note[: split + 1], note[split + 2 : -1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError(f"more than {MAX_SIGNATURES} signature lines")
    signatures = []
    for line in lines:
        dash, _, rest = line.partition(" ")
        name, _, encoded = rest.partition(" ")
        if dash != "\u2014" or not name or "+" in name or not _B64.fullmatch(encoded):
            raise CheckpointError("a signature line is '\u2014 <key name> <base64>'")
        raw = base64.b64decode(encoded, validate=True)
        if len(raw) < 5:
            raise CheckpointError("a signature is a 4-byte key ID and at least one byte")
        signatures.append((name, raw))
    return text, signatures


def verify_checkpoint(note: str, keys: Keyring) -> Checkpoint:
    """Parse `note` and verify it with `keys` (by key name and ID; others' signatures are ignored).

    Raises CheckpointError if the note is malformed, a known key's signature does not verify, or no known key
    signed it.
    """
    text, signatures = parse_note(note)
    signed_by = []
    for name, raw in signatures:
        known = keys.get((name, raw[:4]))
        if known is None:
            continue
        if not known[0].verifies(text.encode(), raw[4:]):
            raise CheckpointError(f"the signature of key {name} ({raw[:4].hex()}) does not verify")
        signed_by.append(known[0].kid)
    if not signed_by:
        raise CheckpointError("no signature by a known hub key")
    lines = text[:-1].split("\n")
    if len(lines) < 3 or not lines[0] or not _SIZE.fullmatch(lines[1]) or not all(lines[3:]):
        raise CheckpointError("a checkpoint's text is origin, tree size and root hash lines")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except binascii.Error as err:
        raise CheckpointError("the root hash line is not base64") from err
    if len(root) != 32:
        raise CheckpointError("the root hash is not 32 bytes")
    return Checkpoint(lines[0], int(lines[1]), root, tuple(signed_by), text)


class PublishedRecord(Protocol):
    """The record outside the database of what was published (`service.auditlog.published`)."""

    def check(self, log_size: int, root_at: Callable[[int], bytes]) -> None: ...

    def record(self, note: str, tree_size: int) -> None: ...


class CheckpointSigner:
    """Signs checkpoints of the audit log held in `tree` (the process's mirror) with `signer`.

    Arguments: the pool, the tree, the note signer (or a function giving the one to use now, so that a rotated
    hub key signs from the moment it is active; each stored checkpoint records its signer's kid), the longest
    wait between checkpoints while entries arrive, the entry count that triggers one sooner, a clock for the
    stored signing times, and the record of published checkpoints kept outside the database (signing is
    refused when the log contradicts it: see `service.auditlog.published`).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        tree: AuditTree,
        signer: NoteSigner | Callable[[], NoteSigner],
        *,
        interval_seconds: float,
        max_entries: int = 1000,
        clock: Clock = utc_now,
        published: PublishedRecord | None = None,
    ) -> None:
        self._pool, self._tree, self._signer = pool, tree, signer
        self._published = published
        self._interval, self._max_entries, self._clock = interval_seconds, max_entries, clock
        self._last_signed = float("-inf")

    async def sign_if_due(self, *, force: bool = False) -> StoredCheckpoint | None:
        """Sign and store a checkpoint of the whole log if one is due (or `force` and the log grew).

        Returns the stored checkpoint, None when none was due. Raises AuditIntegrityError when the stored
        log contradicts the latest checkpoint, ConflictingCheckpointError on a fork, HandoverError
        (unavailable) when the store is down.
        """
        async with db.transaction(self._pool) as conn:
            await store.lock_checkpoints(conn)
            latest = await store.latest_checkpoint(conn)
            size = await audit_reads.log_size(conn)
            if not self._due(latest, size, force):
                return None
            await self._tree.sync(conn, up_to=size)
            if latest is not None:
                await self._tree.check_root(conn, latest.tree_size, latest.root_hash)
            if (published := self._published) is not None:  # what was published outside this database
                await self._tree.answer(conn, lambda: published.check(size, self._tree.tree.root))
            root = await self._tree.root(conn, size)
            now = self._clock()
            signed_at = now if latest is None else max(now, latest.signed_at)
            signer = self._signer() if callable(self._signer) else self._signer
            note = signer.sign(size, root)
            stored = await store.insert_checkpoint(conn, StoredCheckpoint(size, root, signed_at, signer.kid, note))
        self._last_signed = time.monotonic()
        if self._published is not None:
            self._published.record(stored.note, stored.tree_size)
        log.info("audit checkpoint signed", extra={"tree_size": stored.tree_size})
        return stored

    async def run(self) -> None:
        """Sign checkpoints until cancelled; stops (logging why) if the log's integrity fails. Any other fault (the
        store down, a deadlock, a bug) costs one pass: logged, counted and retried (service/background.py)."""
        integrity_failed = asyncio.Event()

        async def one_pass() -> None:
            try:
                await self.sign_if_due()
            except (AuditIntegrityError, ConflictingCheckpointError):
                log.critical("audit log integrity failure: checkpoint signing stopped", exc_info=True)
                integrity_failed.set()  # never sign over a log that contradicts what was signed

        await run_forever(
            "audit-checkpoint-signer", one_pass, interval=min(1.0, self._interval), until=integrity_failed
        )

    def _due(self, latest: StoredCheckpoint | None, size: int, force: bool) -> bool:
        if latest is None:
            return True
        if size <= latest.tree_size:
            return False
        waited = time.monotonic() - self._last_signed
        return force or size - latest.tree_size >= self._max_entries or waited >= self._interval


def _b64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
