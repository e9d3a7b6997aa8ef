"""What the overload benchmark (`bench.overload`) reads after and during its load: the runs,
turns, claims and run-request records in SQL, the lines the executors logged, and the roles'
Prometheus metrics sampled every second (with each process's readiness)."""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from schemas.events import EventType

_RUNS = """
SELECT status, termination_reason, attempt,
       extract(epoch FROM done_at - created_at)::float8 AS trigger_to_done,
       extract(epoch FROM started_at - created_at)::float8 AS to_claim,
       extract(epoch FROM ended_at - started_at)::float8 AS conversation,
       extract(epoch FROM done_at - ended_at)::float8 AS after
FROM eval_runs WHERE company_id = $1::uuid
"""
# A turn played twice shows as the same side speaking twice in a row; a lost one as a gap.
_TURNS = """
SELECT run_id, count(*) AS turns, max(turn_number) AS last,
       count(*) FILTER (WHERE role = previous) AS repeats
FROM (SELECT run_id, turn_number, role,
             lag(role) OVER (PARTITION BY run_id ORDER BY turn_number) AS previous
      FROM eval_run_turns t JOIN eval_runs r ON r.id = t.run_id WHERE r.company_id = $1::uuid) t
GROUP BY run_id
"""
_RECORDS = """
SELECT o.run_id, count(*) FILTER (WHERE o.type = $2) AS requests, count(*) AS records
FROM outbox o JOIN eval_runs r ON r.id = o.run_id WHERE r.company_id = $1::uuid
GROUP BY o.run_id
"""


@dataclass(frozen=True)
class Stored:
    """What the database says about the company's runs."""

    runs: list[asyncpg.Record]
    turns: list[asyncpg.Record]
    records: list[asyncpg.Record]

    def seconds(self, column: str) -> list[float]:
        return [float(r[column]) for r in self.runs if r[column] is not None]

    def statuses(self) -> dict[str, int]:
        return dict(Counter(f"{r['status']}/{r['termination_reason']}" for r in self.runs))

    def claims(self) -> tuple[int, int]:
        """Claims in all (a claim raises the attempt), and runs claimed more than once."""
        attempts = [int(r["attempt"]) for r in self.runs]
        return sum(attempts), sum(1 for a in attempts if a > 1)

    def turn_counts(self) -> Counter[int]:
        return Counter(int(t["turns"]) for t in self.turns)

    def duplicate_turns(self) -> tuple[int, int]:
        """Turns played twice (a side speaking twice in a row), and runs with a gap in 1..n."""
        repeats = sum(int(t["repeats"]) for t in self.turns)
        gaps = sum(1 for t in self.turns if t["last"] != t["turns"])
        return repeats, gaps

    def requests_per_run(self) -> Counter[int]:
        """How many runs have 1, 2, … run-request records in the outbox."""
        return Counter(int(r["requests"]) for r in self.records)

    def records_per_run(self) -> float:
        return sum(int(r["records"]) for r in self.records) / max(1, len(self.records))


async def stored(database_url: str, company_id: str) -> Stored:
    conn = await asyncpg.connect(database_url)
    try:
        runs = await conn.fetch(_RUNS, company_id)
        turns = await conn.fetch(_TURNS, company_id)
        records = await conn.fetch(_RECORDS, company_id, EventType.RUN_REQUESTED.value)
    finally:
        await conn.close()
    return Stored(runs, turns, records)


def logged_events(logs: Path, prefix: str) -> tuple[Counter[str], int]:
    """The JSON log lines of the processes named `prefix`*: count by event name, and all lines."""
    events: Counter[str] = Counter()
    lines = 0
    for path in logs.glob(f"{prefix}*.log"):
        for line in path.read_text(errors="replace").splitlines():
            lines += 1
            try:
                events[str(json.loads(line).get("event", "?"))] += 1
            except (ValueError, AttributeError):
                events["(not JSON)"] += 1
    return events, lines


def scrape(url: str) -> dict[str, float]:
    """One /metrics page: each sample line's value, keyed by its name with labels."""
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 — our own processes
        text = response.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def summed(samples: Mapping[str, float], name: str) -> float | None:
    """A metric summed over its labels; None when the page has no sample of it."""
    values = [v for k, v in samples.items() if k == name or k.startswith(f"{name}{{")]
    return sum(values) if values else None


# Gauges sampled, and how one sample combines the processes' values: a sum for what adds up
# across processes, the highest for what each process measures of the whole or of itself.
GAUGES: dict[str, Callable[[list[float]], float]] = {
    "agent_eval_queue_oldest_pending_age_seconds": max,
    "agent_eval_executor_saturation": max,
    "agent_eval_conversations_active": sum,
    "agent_eval_run_waiters": sum,
    "agent_eval_outbox_unsent": max,
}


def listen_queues(ports: Mapping[int, str]) -> dict[str, tuple[int, int]]:
    """Each named listening port's accept queue now and its limit (the backlog), from `ss`;
    empty where `ss` is missing."""
    try:
        out = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, timeout=5, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    queues: dict[str, tuple[int, int]] = {}
    for line in out.splitlines():
        fields = line.split()
        port = int(fields[3].rsplit(":", 1)[1]) if len(fields) >= 4 else -1
        if port in ports:
            queues[ports[port]] = (int(fields[1]), int(fields[2]))
    return queues


@dataclass
class Sampler:
    """Every second, in a thread: each process's /metrics (the highest value of each gauge in
    GAUGES, combined over processes), /readyz (answers other than 200 counted, by process and
    answer) and listen queues (the longest seen)."""

    metrics: Mapping[str, str]  # process name -> metrics URL
    ready: Mapping[str, str]  # process name -> readyz URL
    ports: Mapping[int, str]  # listening port -> what listens on it
    queues: dict[str, tuple[int, int]] = field(default_factory=dict)  # highest queue, its limit
    highest: dict[str, float] = field(default_factory=dict)
    not_ready: Counter[str] = field(default_factory=Counter)
    last: dict[str, dict[str, float]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._sample()  # the counters' final values

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            self._sample()

    def _sample(self) -> None:
        for name, (queued, limit) in listen_queues(self.ports).items():
            self.queues[name] = (max(queued, self.queues.get(name, (0, 0))[0]), limit)
        for name, url in self.ready.items():
            try:
                with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 — ours
                    answer = str(response.status)
            except urllib.error.HTTPError as exc:
                answer = f"{exc.code} {exc.read().decode(errors='replace')}"  # the checks that failed
            except OSError as exc:
                answer = type(exc).__name__
            if answer != "200":
                self.not_ready[f"{name}: {answer}"] += 1
        for name, url in self.metrics.items():
            try:
                self.last[name] = scrape(url)
            except OSError:
                continue
        for gauge, combine in GAUGES.items():
            values = [v for page in self.last.values() if (v := summed(page, gauge)) is not None]
            if values:
                self.highest[gauge] = max(self.highest.get(gauge, 0.0), combine(values))

    def total(self, name: str) -> float | None:
        """A counter's last value summed over processes and labels; None when no process has it."""
        values = [v for page in self.last.values() if (v := summed(page, name)) is not None]
        return sum(values) if values else None

    def by_label(self, name: str) -> dict[str, float]:
        """A labelled counter's last values, by label set, summed over processes."""
        found: Counter[str] = Counter()
        for page in self.last.values():
            for key, value in page.items():
                if key.startswith(f"{name}{{"):
                    found[key.removeprefix(name)] += int(value)
        return dict(found)
