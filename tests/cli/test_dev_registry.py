"""Issue 26 item 5: development keys never edit the tracked registry. `handover keys init` (which `make demo` runs)
makes the development registry `keys/private/network.json` (git-ignored, beside the private keys) from the
tracked `keys/network.json`, and every command reads and writes that copy by default, so a checkout stays clean."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from service.registry import load_registry
from tests.support.hub import ROOT
from tests.support.processes import HANDOVER


def git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=Test", "-c", "user.email=test@example.invalid", "-c", "commit.gpgsign=false"]
    done = subprocess.run(["git", *identity, *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout


def handover(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOVER_")}  # the defaults, as a user has them
    return subprocess.run([HANDOVER, *args], cwd=repo, env=env, capture_output=True, text=True, timeout=60, check=True)


def test_keys_init_and_rotate_leave_the_tracked_registry_as_committed(tmp_path: Path) -> None:
    repo = tmp_path / "checkout"
    (repo / "keys").mkdir(parents=True)
    shutil.copy(ROOT / "keys" / "network.json", repo / "keys" / "network.json")
    shutil.copy(ROOT / ".gitignore", repo / ".gitignore")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "a clone's tracked files")

    handover(repo, "keys", "init")
    handover(repo, "keys", "rotate", "RM1")

    assert git(repo, "status", "--porcelain") == "", "keys/network.json and everything tracked as committed"
    assert (repo / "keys" / "network.json").read_bytes() == (ROOT / "keys" / "network.json").read_bytes()
    development = load_registry(repo / "keys" / "private" / "network.json")
    assert development.centre().ods == "RGT"
    rm1 = development.participants["RM1"]
    assert len(rm1.keys) == 2, "the rotation went into the development registry too"
    shown = handover(repo, "keys", "show")
    assert "keys/private/network.json" in shown.stdout + shown.stderr, "the commands read it by default"


def test_keys_init_makes_every_key_a_hub_needs_so_it_can_start_with_them_read_only(tmp_path: Path) -> None:
    """Found by the compose check: a hub whose keys are mounted read-only could not make its pseudonym key on first
    start, and `keys init` (whose docstring in service/pseudonyms.py says it makes it) did not."""
    repo = tmp_path / "checkout"
    (repo / "keys").mkdir(parents=True)
    shutil.copy(ROOT / "keys" / "network.json", repo / "keys" / "network.json")
    handover(repo, "keys", "init")
    private = repo / "keys" / "private"
    for name in ("hub.jwk", "RGT.jwk", "kek.key", "pseudonym.key"):
        assert (private / name).is_file(), name
    assert len(bytes.fromhex((private / "pseudonym.key").read_text().strip())) >= 32
