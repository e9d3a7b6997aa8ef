"""CPU and memory of process groups, for the conversations benchmark (`bench.conversations`).

A group is named root processes and everything they forked: its CPU is each root's own time, the
time of its children already reaped (`cutime`/`cstime` in /proc/<pid>/stat: PostgreSQL's exited
backends, say) and, recursively, that of its live descendants — except the subtrees rooted at
another group's process (the embedded PostgreSQL of `agent-eval dev`, for one). Memory: each
root's peak RSS (VmHWM), and the group's proportional set size (Pss, shared pages split among
the processes sharing them) summed over its live processes, sampled; its highest value."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.stack import Proc, children_of, descendants, peak_rss_mb, process_table

Roots = Callable[[], list[int]]  # a group's root pids now (a restarted process has a new one)


@dataclass(frozen=True)
class Groups:
    """Named groups of processes (see the module's docstring)."""

    roots: Mapping[str, Roots]

    def trees(self) -> tuple[dict[int, Proc], dict[str, list[int]]]:
        """The process table now, and each group's live pids."""
        table = process_table()
        children = children_of(table)
        rooted = {name: [pid for pid in roots() if pid in table] for name, roots in self.roots.items()}
        stop = {pid for pids in rooted.values() for pid in pids}
        return table, {
            name: [p for r in pids for p in descendants(r, children, stop)] for name, pids in rooted.items()
        }

    def cpu_seconds(self) -> dict[str, float]:
        """Each group's CPU seconds so far (own, reaped children's and live descendants')."""
        table, trees = self.trees()
        return {name: sum(table[p].own_s + table[p].reaped_s for p in pids) for name, pids in trees.items()}

    def peak_rss_mb(self) -> dict[str, float]:
        """Each live root's peak resident memory (VmHWM), as `group` or `group pid`."""
        peaks: dict[str, float] = {}
        for name, roots in self.roots.items():
            pids = roots()
            for pid in pids:
                with contextlib.suppress(OSError):
                    peaks[name if len(pids) == 1 else f"{name} {pid}"] = peak_rss_mb(pid)
        return peaks


def pss_mb(pid: int) -> float:
    """The process's proportional set size in MB (0 when it ended or cannot be read)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    return 0.0


def rates(before: Mapping[str, float], after: Mapping[str, float], seconds: float) -> dict[str, float]:
    """CPU seconds per second of each group between two readings."""
    return {name: (after.get(name, 0.0) - before.get(name, 0.0)) / seconds for name in after}


@dataclass
class MemoryWatch:
    """Every `period_s`, in a thread: each group's summed Pss; the highest seen per group."""

    groups: Groups
    period_s: float = 2.0
    highest: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.period_s):
                return

    def sample(self) -> None:
        _, trees = self.groups.trees()
        for name, pids in trees.items():
            self.highest[name] = max(self.highest.get(name, 0.0), sum(pss_mb(pid) for pid in pids))
