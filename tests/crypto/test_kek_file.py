"""The file key-encryption key: 0600, never silently replaced, fails closed when the file goes, follows changes."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

import pytest

from service.crypto.kek import (
    FileKeyring,
    KeyEncryptionKey,
    KeyUnavailableError,
    UnwrapError,
    WrappedKey,
    add_active_key,
    create_kek_file,
    remove_keys,
)
from service.crypto.vault import PayloadVault

DATA_KEY = bytes(range(32))
CONTEXT = uuid.uuid4().bytes


def test_created_private_and_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "private" / "kek.key"
    kek_id = create_kek_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with pytest.raises(FileExistsError):
        create_kek_file(path)
    keyring = FileKeyring(path)
    assert isinstance(keyring, KeyEncryptionKey) and keyring.kek_id == kek_id


async def test_wrap_unwrap_bound_to_its_row(tmp_path: Path) -> None:
    create_kek_file(tmp_path / "kek.key")
    keyring = FileKeyring(tmp_path / "kek.key")
    wrapped = await keyring.wrap(DATA_KEY, CONTEXT)
    assert DATA_KEY not in wrapped.wrapped
    assert await keyring.unwrap(wrapped, CONTEXT) == DATA_KEY
    with pytest.raises(UnwrapError):
        await keyring.unwrap(wrapped, uuid.uuid4().bytes)
    with pytest.raises(KeyUnavailableError):
        await keyring.unwrap(WrappedKey("kek-000000000000000000000000", wrapped.wrapped), CONTEXT)


async def test_fails_closed_when_the_file_disappears_and_recovers_when_it_returns(tmp_path: Path) -> None:
    path = tmp_path / "kek.key"
    create_kek_file(path)
    vault = PayloadVault(FileKeyring(path))
    wrapped = await vault.kek.wrap(DATA_KEY, CONTEXT)
    path.rename(tmp_path / "elsewhere")
    for operation in (vault.kek.wrap(DATA_KEY, CONTEXT), vault.kek.unwrap(wrapped, CONTEXT), vault.kek.check()):
        with pytest.raises(KeyUnavailableError):
            await operation
    assert not await vault.available()
    (tmp_path / "elsewhere").rename(path)
    assert await vault.available() and await vault.kek.unwrap(wrapped, CONTEXT) == DATA_KEY


@pytest.mark.parametrize(
    "edit",
    [
        lambda doc: doc.update(format="other"),
        lambda doc: doc.update(active="kek-unknown"),
        lambda doc: doc["keys"].update({next(iter(doc["keys"])): "AAAA"}),
    ],
    ids=["format", "active", "key-bytes"],
)
def test_a_malformed_file_is_unavailable_not_guessed_at(tmp_path: Path, edit: object) -> None:
    path = tmp_path / "kek.key"
    create_kek_file(path)
    doc = json.loads(path.read_text())
    edit(doc)  # type: ignore[operator]
    path.write_text(json.dumps(doc))
    with pytest.raises(KeyUnavailableError):
        _ = FileKeyring(path).kek_id


async def test_a_running_keyring_follows_rotation_at_once(tmp_path: Path) -> None:
    path = tmp_path / "kek.key"
    old = create_kek_file(path)
    keyring = FileKeyring(path)
    before = await keyring.wrap(DATA_KEY, CONTEXT)
    new, retired = add_active_key(path)
    assert retired == (old,)
    after = await keyring.wrap(DATA_KEY, CONTEXT)
    assert (before.kek_id, after.kek_id) == (old, new)
    assert await keyring.unwrap(before, CONTEXT) == DATA_KEY, "retired keys still unwrap"
    remove_keys(path, {old})
    with pytest.raises(KeyUnavailableError):
        await keyring.unwrap(before, CONTEXT)
    with pytest.raises(ValueError, match="active"):
        remove_keys(path, {new})
