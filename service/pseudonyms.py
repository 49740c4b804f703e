"""Keyed pseudonyms for NHS numbers: stored and logged only as HMAC-SHA256 under a key kept with the keys.

The same NHS number always gives the same pseudonym under one key, so episodes can be found by NHS number and
audit events can be joined, while a database dump or an audit export reveals no NHS number. The key lives in
``keys/private/pseudonym.key`` (32 random bytes, hex; made by ``handover keys init``, or on first use in
development).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path

PSEUDONYM_KEY_FILE = "pseudonym.key"


class Pseudonymiser:
    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the pseudonym key must be at least 32 bytes")
        self._key = key

    def nhs_number(self, value: str) -> str:
        """The pseudonym of an NHS number: lowercase hex HMAC-SHA256."""
        return hmac.new(self._key, b"nhs-number:" + value.encode("ascii"), hashlib.sha256).hexdigest()

    def birth_date(self, nhs_number: str, birth_date: str) -> str:
        """The pseudonym of a patient's date of birth, bound to their NHS number (so it links no one else)."""
        message = b"birth-date:" + nhs_number.encode("ascii") + b":" + birth_date.encode("ascii")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    @classmethod
    def from_keys_dir(cls, keys_dir: Path) -> Pseudonymiser:
        """Load the key, creating it (0600) if this is a fresh development setup."""
        path = keys_dir / PSEUDONYM_KEY_FILE
        if not path.exists():
            keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".pseudonym-", dir=keys_dir)
            try:
                os.write(fd, secrets.token_hex(32).encode("ascii"))
                os.fsync(fd)
                os.close(fd)
                # Created exclusively: a second worker starting at the same moment must not end up with a key
                # of its own (its NHS number pseudonyms would never match the first's).
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, path)
            finally:
                os.unlink(tmp)
        return cls(bytes.fromhex(path.read_text(encoding="ascii").strip()))
