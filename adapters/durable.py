"""Files written all or nothing: to a temporary name, fsynced, renamed into place, the directory fsynced.

Used by the HL7 connector's queue and by the audit-log witness, whose state must survive a crash or power cut.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """`data` at `path`, all or nothing, on disk before this returns."""
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    temporary.replace(path)
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make renames and unlinks in `directory` durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
