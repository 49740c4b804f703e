"""The domain helper that seals payloads for the store and opens them again: the only code that holds both a
plaintext payload and a key-encryption key.

`PayloadVault.seal` gives the store an `EncryptedPayload` (fresh data key, wrapped under the current KEK);
`PayloadVault.open` turns a `StoredPayload` back into the original bytes. When the KEK cannot be used both refuse
with `HandoverError(UNAVAILABLE)` (503 with Retry-After): the service fails closed and stores nothing in clear.
`open_vault` builds the vault at start-up from a file KEK (creating one only for a brand-new development set-up)
and `seal_legacy_payloads` encrypts rows written in plaintext before migration 0003.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import asyncpg

from service.crypto.envelope import (
    EncryptedBlob,
    PayloadIdentity,
    PayloadUnreadableError,
    decrypt_payload,
    encrypt_new_payload,
)
from service.crypto.kek import (
    FileKeyring,
    KeyEncryptionKey,
    KeyUnavailableError,
    UnwrapError,
    WrappedKey,
    create_kek_file,
)
from service.errors import Code, HandoverError
from service.store import datakeys, db, messages
from service.store.messages import EncryptedPayload, StoredPayload

log = logging.getLogger("handover.crypto")
RETRY_AFTER_SECONDS = 5


class PayloadShreddedError(Exception):
    """The payload's data key was deleted at the end of its retention: it can never be read again."""


class PayloadVault:
    """Seals and opens payloads with per-payload data keys wrapped by `kek` (any `KeyEncryptionKey`)."""

    def __init__(self, kek: KeyEncryptionKey) -> None:
        self.kek = kek

    async def seal(self, plaintext: bytes, identity: PayloadIdentity) -> EncryptedPayload:
        """Encrypt `plaintext` for storage. HandoverError(UNAVAILABLE) if the KEK cannot be used."""
        data_key, blob = encrypt_new_payload(plaintext, identity)
        try:
            wrapped = await self.kek.wrap(data_key, identity.message_id.bytes)
        except KeyUnavailableError as err:
            log.error("payload not sealed: key-encryption key unavailable", extra={"sender": identity.sender})
            raise keys_unavailable("nothing was accepted. Retry with the same X-Request-ID.") from err
        return EncryptedPayload(blob.ciphertext, blob.nonce, blob.aad_version, wrapped.kek_id, wrapped.wrapped)

    async def open(self, stored: StoredPayload) -> bytes:
        """The original bytes. Raises HandoverError(UNAVAILABLE) if the KEK cannot be used, PayloadShreddedError after
        retention, PayloadUnreadableError if the ciphertext, key or identity was altered or moved."""
        encrypted = stored.encrypted
        if encrypted is None:
            raise PayloadShreddedError("the payload was deleted at the end of its retention")
        identity = PayloadIdentity(stored.message_id, stored.sender_ods, stored.recipient_ods)
        try:
            data_key = await self.kek.unwrap(
                WrappedKey(encrypted.kek_id, encrypted.wrapped_key), stored.message_id.bytes
            )
        except KeyUnavailableError as err:
            raise keys_unavailable("try again later.") from err
        except UnwrapError:
            raise PayloadUnreadableError("the stored data key failed authentication") from None
        blob = EncryptedBlob(encrypted.ciphertext, encrypted.nonce, encrypted.aad_version)
        return decrypt_payload(blob, identity, data_key)

    async def available(self) -> bool:
        """Whether the KEK can be used now."""
        try:
            await self.kek.check()
        except KeyUnavailableError:
            return False
        return True


def keys_unavailable(then: str) -> HandoverError:
    return HandoverError(
        Code.UNAVAILABLE,
        f"The hub's encryption keys are temporarily unavailable; {then}",
        retry_after=RETRY_AFTER_SECONDS,
    )


async def open_vault(pool: asyncpg.Pool, kek_file: Path, *, create_if_missing: bool) -> PayloadVault:
    """The vault over the file KEK at `kek_file`.

    With `create_if_missing` (the development default location, ``HANDOVER_KEK_FILE`` unset) a missing file is
    created, with a warning, but only while no data key exists in the database: creating a new KEK for existing
    data would leave it unreadable. Otherwise a missing or bad file leaves the vault unavailable (503 for
    acceptance, relay paused) until the file appears; nothing is refused at start-up, so the service recovers
    without a restart. KEK ids in use that the keyring lacks are logged.
    """
    if create_if_missing and _missing(kek_file):
        async with db.connection(pool) as conn:
            in_use = await datakeys.kek_ids_in_use(conn)
        if in_use:
            log.error(
                "key-encryption key file missing while stored data keys need it: not creating a new one",
                extra={"count": len(in_use)},
            )
        else:
            with contextlib.suppress(FileExistsError):  # another process created it a moment ago: use theirs
                create_kek_file(kek_file)
                log.warning(f"created a development key-encryption key at {kek_file} (mode 0600); back it up")
    keyring = FileKeyring(kek_file)
    try:
        held = set(keyring.kek_ids())
    except KeyUnavailableError:
        log.error("key-encryption key unavailable: acceptance refused and push delivery paused until it is")
        return PayloadVault(keyring)
    async with db.connection(pool) as conn:
        missing = set(await datakeys.kek_ids_in_use(conn)) - held
    if missing:
        log.error("stored data keys are wrapped under KEKs this keyring lacks", extra={"count": len(missing)})
    return PayloadVault(keyring)


def _missing(path: Path) -> bool:
    return not path.exists()


async def seal_legacy_payloads(pool: asyncpg.Pool, vault: PayloadVault, *, batch: int = 100) -> int:
    """Encrypt every payload still stored in plaintext (written before migration 0003); returns how many."""
    sealed = 0
    while True:
        async with db.transaction(pool) as conn:
            rows = await messages.legacy_plaintext_payloads(conn, limit=batch)
            for row in rows:
                identity = PayloadIdentity(row.message_id, row.sender_ods, row.recipient_ods)
                await messages.replace_legacy_payload(conn, row.message_id, await vault.seal(row.plaintext, identity))
        sealed += len(rows)
        if len(rows) < batch:
            break
    if sealed:
        log.warning("sealed legacy plaintext payloads", extra={"count": sealed})
    return sealed


__all__ = ["PayloadShreddedError", "PayloadUnreadableError", "PayloadVault", "open_vault", "seal_legacy_payloads"]
