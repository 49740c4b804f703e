"""The copy of Patroni's dependency closure (tests/ha/pythonpath.py) is enough for Patroni to start, as the user
the cluster runs as, with no site-packages but the copy: what a checkout in a private mode-700 home relies on."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ha.cluster import _as, _python_for, _run_as, require_ha_parts
from tests.ha.pythonpath import closure, copy_closure

# What `python -m patroni` imports to run with etcd v3 and psycopg 3 (the imports Patroni defers to start-up).
IMPORTS = "import patroni.__main__, patroni.dcs.etcd3, patroni.postgresql, psycopg; psycopg.connect"


@pytest.fixture
def readable_directory() -> Iterator[Path]:
    """A directory the cluster's user may reach (pytest's own temp directory is private to us)."""
    directory = Path(tempfile.mkdtemp(prefix="handover-ha-closure-", dir="/tmp"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory)
    assert not directory.exists()


def test_patroni_imports_from_the_copied_closure_alone(readable_directory: Path) -> None:
    require_ha_parts()
    names = {d.metadata["Name"].lower() for d in closure()}
    assert {"patroni", "psycopg", "psycopg-binary", "python-etcd", "pyyaml"} <= names
    assert not names & {"pytest", "aiohttp", "mypy"}, "only what Patroni needs, not the whole virtualenv"
    copied = copy_closure(readable_directory / "site-packages")
    user = _run_as()
    result = subprocess.run(
        [_python_for(user), "-S", "-c", IMPORTS],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(copied), "LC_ALL": "C.UTF-8"},
        cwd=readable_directory,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        **_as(user),
    )
    assert result.returncode == 0, result.stderr
    assert not any(p.stat().st_mode & 0o004 == 0 for p in copied.rglob("*")), "everything readable by all"
    assert os.path.isdir(copied / "patroni")
