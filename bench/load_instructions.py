"""Instructions per message, counted by valgrind's callgrind: the one-worker hub as it serves 16 clients, and the
bare pipeline ceiling's process, each with collection switched on for the timed messages only.

On this machine the same run's CPU timings move by a third from round to round; instruction counts repeat to the
first decimal. Set beside the CPU per message measured in the same run, they split the hub's distance from the
ceiling in two: how much work each does per message (instructions), and how fast that work runs (instructions
per microsecond of CPU: compiled code such as pydantic-core's Rust validator runs more of them per microsecond
than interpreted Python). Without valgrind the rows say so and the rest of the bench runs as before.

`python -m bench.load_instructions ceiling DSN NETWORK_DIR COUNT` and `... stages DIRECTORY COUNT` are the
children run under callgrind for the ceiling and for the CPU-only stages; nothing else calls them directly.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.load_ceiling import bare_pipeline
from bench.load_hub import ROOT, BenchNetwork, closed_loop, hub_process, scratch_database
from bench.load_messages import signed_referrals
from bench.load_stages import stages_of


@dataclass(frozen=True)
class Instructions:
    """Millions of instructions per message, for the hub (one worker, 16 clients), the ceiling, and each CPU-only
    stage of bench/load_stages.py run in a process of its own (by stage name)."""

    hub: float
    ceiling: float
    stages: dict[str, float]
    messages: int


def callgrind_available() -> bool:
    return shutil.which("valgrind") is not None and shutil.which("callgrind_control") is not None


def _callgrind_control(pid: int, *arguments: str) -> None:
    """`callgrind_control ARGUMENTS pid`: tell the process `pid` (run under valgrind) what to collect or dump."""
    subprocess.run(["callgrind_control", *arguments, str(pid)], check=True, capture_output=True)


def _collection(pid: int, on: bool) -> None:
    """Switch callgrind's collection on or off in the process `pid`."""
    _callgrind_control(pid, "-i", "on" if on else "off")


_TOTALS = re.compile(r"^(?:totals|summary): (\d+)$", re.MULTILINE)


def _totals(text: str) -> int:
    """The instructions one callgrind output file counted (its totals line, else its summary line)."""
    return max((int(found) for found in _TOTALS.findall(text)), default=0)


def _total_instructions(out: Path) -> int:
    """The instructions callgrind counted (all threads: one file per thread when separated)."""
    paths = out.parent.glob(f"{out.name}*")
    return max((_totals(path.read_text(encoding="utf-8", errors="replace")) for path in paths), default=0)


async def _run_child(out: Path, log_path: Path, what: str, *arguments: str) -> None:
    """`python -m bench.load_instructions ARGUMENTS` under callgrind (output to `out`), to its end."""
    command = [sys.executable, "-m", "bench.load_instructions", *arguments]
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(*_valgrind(out), *command, stdout=log, stderr=log, cwd=ROOT)
        if await proc.wait() != 0:
            raise RuntimeError(f"{what} under callgrind exited with {proc.returncode}; see {log_path}")


async def hub_instructions(server: str, network: BenchNetwork, directory: Path, *, count: int) -> float:
    """Millions of instructions per accepted message in a one-worker `handover serve` under 16 clients."""
    out = directory / "hub.callgrind"
    registry = network.registry
    async with (
        scratch_database(server) as dsn,
        hub_process(network, dsn, workers=1, log_name="callgrind", wrapper=_valgrind(out), ready_within=900) as hub,
    ):
        await closed_loop(hub.base, signed_referrals(registry, network.keys_dir, 60, seed=900_000), clients=16)
        requests = signed_referrals(registry, network.keys_dir, count)
        _collection(hub.pid, True)
        result = await closed_loop(hub.base, requests, clients=16)
        _collection(hub.pid, False)
    if result.accepted != count:
        raise RuntimeError(f"under callgrind the hub accepted {result.accepted} of {count}: {result.statuses}")
    return _total_instructions(out) / 1e6 / count


async def ceiling_instructions(server: str, network: BenchNetwork, directory: Path, *, count: int) -> float:
    """Millions of instructions per message in the bare pipeline ceiling's process (16 tasks)."""
    out = directory / "ceiling.callgrind"
    async with scratch_database(server, migrated=False) as dsn:
        log = directory / "ceiling-callgrind.log"
        await _run_child(out, log, "the ceiling", "ceiling", dsn, str(network.directory), str(count))
    return _total_instructions(out) / 1e6 / count


async def stage_instructions(directory: Path, *, count: int) -> dict[str, float]:
    """Millions of instructions per message for each CPU-only stage, one callgrind dump per stage."""
    out = directory / "stages.callgrind"
    await _run_child(out, directory / "stages-callgrind.log", "the stages", "stages", str(directory), str(count))
    names = json.loads((directory / "stage-names.json").read_text(encoding="utf-8"))
    counted: dict[str, float] = {}
    for path in out.parent.glob(f"{out.name}.*"):
        text = path.read_text(encoding="utf-8", errors="replace")
        trigger = re.search(r"^desc: Trigger: dump stage-(\d+)$", text, re.MULTILINE)
        if trigger:
            counted[names[int(trigger.group(1))]] = _totals(text) / 1e6 / count
    return counted


async def instructions(server: str, network: BenchNetwork, *, count: int = 300) -> Instructions:
    with tempfile.TemporaryDirectory(prefix="handover-callgrind-") as scratch:
        directory = Path(scratch)
        hub = await hub_instructions(server, network, directory, count=count)
        ceiling = await ceiling_instructions(server, network, directory, count=count)
        stages = await stage_instructions(directory, count=count)
    return Instructions(hub, ceiling, stages, count)


def _stages_child(directory: Path, count: int) -> None:
    """In the process under callgrind: each stage over `count` referrals, collected and dumped on its own (as
    `stage-N`, N its place in stage-names.json)."""
    network = BenchNetwork.create(directory / "stages")
    stages = stages_of(network, directory)
    (directory / "stage-names.json").write_text(json.dumps([stage.name for stage in stages]), encoding="utf-8")
    requests = signed_referrals(network.registry, network.keys_dir, count)
    pid = os.getpid()
    for number, stage in enumerate(stages):
        for request in requests[:20]:  # warm: key imports, compiled profiles
            stage.run(request)
        _callgrind_control(pid, "-z")  # zero the counts: each dump holds one stage's
        _collection(pid, True)
        for request in requests:
            stage.run(request)
        _collection(pid, False)
        _callgrind_control(pid, "-d", f"stage-{number}")


def _valgrind(out: Path) -> list[str]:
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]


async def _ceiling_child(dsn: str, network_dir: Path, count: int) -> None:
    """In the process under callgrind: warm up, then collect over `count` messages through the bare pipeline."""
    network = BenchNetwork(network_dir, network_dir / "network.json", network_dir / "private")
    registry = network.registry
    await bare_pipeline(dsn, registry, signed_referrals(registry, network.keys_dir, 40, seed=900_000), concurrency=16)
    requests = signed_referrals(registry, network.keys_dir, count)
    _collection(os.getpid(), True)
    await bare_pipeline(dsn, registry, requests, concurrency=16)
    _collection(os.getpid(), False)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "ceiling":
        asyncio.run(_ceiling_child(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])))
    elif len(sys.argv) == 4 and sys.argv[1] == "stages":
        _stages_child(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit(
            "usage (run under callgrind): python -m bench.load_instructions ceiling DSN NETWORK_DIR COUNT\n"
            "                             python -m bench.load_instructions stages DIRECTORY COUNT"
        )
