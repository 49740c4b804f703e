"""The PYTHONPATH Patroni runs with as the `postgres` user: this virtualenv's site-packages when that user may read
them, otherwise a copy of the `patroni` distribution's dependency closure in a directory it may read.

When we are root in a checkout inside a private directory (a mode-700 /root, as CI clones), `postgres` cannot
reach the virtualenv, so `copy_closure` copies the files of `patroni` and of every installed distribution it
requires (recursively, with the extras this project asks for and the markers that hold here) under the cluster's own
directory, which `close` removes with everything else.
"""

from __future__ import annotations

import os
import shutil
import site
from contextlib import suppress
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

CAN_READ = "import os, sys; sys.exit(not all(os.access(p, os.R_OK | os.X_OK) for p in sys.argv[1:]))"


def site_packages() -> list[str]:
    return list(site.getsitepackages())


def requested(root: str) -> Requirement:
    """`root` as this project requires it (with its extras: `patroni[etcd3,psycopg3]`), else bare."""
    with suppress(metadata.PackageNotFoundError):
        for line in metadata.distribution("handover").requires or []:
            requirement = Requirement(line)
            if canonicalize_name(requirement.name) == canonicalize_name(root):
                return requirement
    return Requirement(root)


def closure(root: str = "patroni") -> list[metadata.Distribution]:
    """`root`'s distribution and every installed distribution it requires with the extras asked for,
    recursively, each once (an optional requirement this virtualenv lacks, another DCS's client say, is skipped)."""
    found: dict[str, metadata.Distribution] = {}
    done: set[tuple[str, str]] = set()
    pending = [requested(root)]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        extras = sorted(requirement.extras) or [""]
        if all((name, extra) in done for extra in extras):
            continue
        done.update((name, extra) for extra in extras)
        try:
            dist = found.get(name) or metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[name] = dist
        for line in dist.requires or []:
            with suppress(InvalidRequirement):
                needed = Requirement(line)
                if needed.marker is None or any(needed.marker.evaluate({"extra": e}) for e in extras):
                    pending.append(needed)
    return list(found.values())


def copy_closure(target: Path, root: str = "patroni") -> Path:
    """Copy the files of `root`'s closure into `target` (made readable by everyone); returns `target`."""
    target.mkdir(mode=0o755)
    for dist in closure(root):
        files = dist.files
        assert files is not None, f"{dist.metadata['Name']} lists no files (RECORD): reinstall it from a wheel"
        for entry in files:
            relative = Path(str(entry))
            if relative.is_absolute() or ".." in relative.parts or "__pycache__" in relative.parts:
                continue  # console scripts live outside site-packages; bytecode is rebuilt (or not) as needed
            source = Path(str(dist.locate_file(entry)))
            if source.is_file():
                destination = target / relative
                destination.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                shutil.copy2(source, destination)
    for directory, subdirectories, names in os.walk(target):
        for sub in subdirectories:
            os.chmod(os.path.join(directory, sub), 0o755)  # noqa: S103 (the postgres user must read it)
        for name in names:
            path = os.path.join(directory, name)
            os.chmod(path, os.stat(path).st_mode | 0o444)
    return target
