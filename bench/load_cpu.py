"""Where the CPU goes during a benchmark phase: the hub's processes, PostgreSQL's, and the load generator's own.

Issue 12 asks two workers to reach 1.7 x one on a 2-core machine while the load generator and PostgreSQL run on
the same cores. `CpuMeter` measures CPU seconds per accepted message for each of the three in the same phase,
and `workers_bound` turns them into the most N hub workers could reach on this machine if nothing else changed:
the hub's share divided among its workers, everyone's share divided among the cores, whichever binds first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import psutil


def _cpu_seconds(processes: list[psutil.Process]) -> dict[int, float]:
    found: dict[int, float] = {}
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        found[process.pid] = times.user + times.system
    return found


def _hub_processes(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


_POSTGRES_DATA_DIR: list[Path] = []


def use_postgres_server(data_dir: Path) -> None:
    """Count only the PostgreSQL server whose data directory is `data_dir` (the bench's own embedded cluster):
    on a machine shared with other servers, their CPU is not the hub's."""
    _POSTGRES_DATA_DIR[:] = [data_dir]


def _postgres_processes() -> list[psutil.Process]:
    if _POSTGRES_DATA_DIR:
        try:
            postmaster = psutil.Process(int((_POSTGRES_DATA_DIR[0] / "postmaster.pid").read_text().split()[0]))
            return [postmaster, *postmaster.children()]
        except (OSError, ValueError, IndexError, psutil.Error):
            pass  # not running (yet): count every server, as without a data directory
    return [p for p in psutil.process_iter(["name"]) if (p.info.get("name") or "").startswith("postgres")]


@dataclass(frozen=True)
class CpuShare:
    """CPU milliseconds per accepted message, by who spent them."""

    hub_ms: float
    postgres_ms: float
    load_generator_ms: float

    @property
    def total_ms(self) -> float:
        return self.hub_ms + self.postgres_ms + self.load_generator_ms

    def workers_bound(self, workers: int, cores: int | None = None) -> float:
        """Messages per second N workers could reach here at these costs: hub-bound or machine-bound."""
        cores = cores or os.cpu_count() or 1
        per_message = max(self.hub_ms / workers, self.total_ms / cores, 1e-9)
        return 1000 / per_message

    def describe(self) -> str:
        return (
            f"CPU per message: hub {self.hub_ms:.1f} ms, PostgreSQL {self.postgres_ms:.1f} ms, "
            f"load generator {self.load_generator_ms:.1f} ms"
        )


class CpuMeter:
    """Start before a phase (`start`), then `share(accepted)` after it. PostgreSQL counts the bench's own cluster
    (`use_postgres_server`), else every server process on this machine (backends of other databases too: run
    benchmarks on a quiet machine)."""

    def __init__(self, hub_pid: int) -> None:
        self._hub_pid = hub_pid
        self._before: tuple[dict[int, float], dict[int, float], float] | None = None

    def start(self) -> None:
        self._before = (_cpu_seconds(_hub_processes(self._hub_pid)), _cpu_seconds(_postgres_processes()), _own())

    def share(self, accepted: int) -> CpuShare:
        if self._before is None:
            raise RuntimeError("CpuMeter.share before start")
        hub_before, postgres_before, own_before = self._before
        hub = _spent(hub_before, _cpu_seconds(_hub_processes(self._hub_pid)))
        postgres = _spent(postgres_before, _cpu_seconds(_postgres_processes()))
        count = max(accepted, 1)
        return CpuShare(1000 * hub / count, 1000 * postgres / count, 1000 * (_own() - own_before) / count)


def _own() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between the two readings; a process born meanwhile counts from zero."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())
