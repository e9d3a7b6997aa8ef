"""What the benchmarks share: a fresh migrated database on the local server, `agent-eval`
processes with their logs, readiness waits, and memory readings from /proc."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from service.accounts import api_keys, tenants
from service.db.migrate import apply_migrations
from service.db.postgres import create_pool
from service.domain.apikeys import SCOPES
from service.local import pgserver

ROOT = Path(__file__).resolve().parent.parent
AGENT_EVAL = shutil.which("agent-eval", path=str(Path(sys.executable).parent)) or "agent-eval"


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@dataclass(frozen=True)
class Seeded:
    database_url: str
    database: str
    key: str
    company_id: str


def database_server() -> str | None:
    """The PostgreSQL server from `AGENT_EVAL_DATABASE_URL`, or None after saying how to set it."""
    server_url = os.environ.get("AGENT_EVAL_DATABASE_URL")
    if not server_url:
        print("AGENT_EVAL_DATABASE_URL is not set: run `scripts/services up` and `source .services/env`")
        return None
    return server_url


async def create_database(server_url: str) -> tuple[str, str]:
    """A fresh, migrated database on the server: (its url, its name). Dropped if migrating fails."""
    name = f"agent_eval_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(with_database(server_url, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = with_database(server_url, name)
    try:
        conn = await asyncpg.connect(url)
        await apply_migrations(conn)
        await conn.close()
    except BaseException:
        await drop(server_url, name)
        raise
    return url, name


async def seed(server_url: str, *, credits_cents: int = 10_000) -> Seeded:
    """A fresh, migrated database with one company and an all-scopes key without a real limit."""
    url, name = await create_database(server_url)
    return await seed_company(url, name, credits_cents=credits_cents)


async def seed_company(url: str, name: str, *, credits_cents: int = 10_000) -> Seeded:
    """One company and an all-scopes key without a real limit in the existing database `name`
    (at `url`): `agent-eval dev`'s, say."""
    pool = await create_pool(url, min_size=1, max_size=2)
    try:
        company = await tenants.create_company(pool, "Bench", credits_cents=credits_cents)
        issued = await api_keys.issue_api_key(
            pool, company.id, name="bench", scopes=list(SCOPES), rate_limit_per_minute=100_000_000
        )
    finally:
        await pool.close()
    return Seeded(url, name, issued.key, str(company.id))


async def drop(server_url: str, name: str) -> None:
    admin = await asyncpg.connect(with_database(server_url, "postgres"))
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@dataclass
class Processes:
    """`agent-eval` processes, each in its own session, logging to a file; stopped with SIGTERM."""

    env: Mapping[str, str]
    logs: Path
    started: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(
        self,
        name: str,
        *argv: str,
        env: Mapping[str, str] | None = None,
        program: Sequence[str] = (AGENT_EVAL,),
    ) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [*program, *argv],
            env={**os.environ, **self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )
        self.started[name] = process
        return process

    def run(self, *argv: str) -> None:
        """`agent-eval *argv` to its end; a failure raises with what the command printed."""
        done = subprocess.run(
            [AGENT_EVAL, *argv], env={**os.environ, **self.env}, capture_output=True, check=False
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")[-3000:]
            raise RuntimeError(f"agent-eval {' '.join(argv)} exited with {done.returncode}:\n{output}")

    def peak_rss_mb(self) -> dict[str, float]:
        """Each running process's peak resident memory (VmHWM), in MB."""
        return {name: peak_rss_mb(p.pid) for name, p in self.started.items() if p.poll() is None}

    def cpu_seconds(self) -> dict[str, float]:
        """Each running process's CPU time so far (user + system), its child processes' included
        (an executor started with `--processes N` is a supervisor of N children), in seconds."""
        return {name: tree_cpu_seconds(p.pid) for name, p in self.started.items() if p.poll() is None}

    def stop(self, name: str, timeout_s: float = 30.0) -> None:
        process = self.started.get(name)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def stop_all(self) -> None:
        for name in list(self.started):
            self.stop(name)


def proc_status_kb(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Proc:
    pid: int
    parent: int
    own_s: float  # utime + stime
    reaped_s: float  # cutime + cstime: its children that ended and were waited for


def read_proc(pid: int) -> Proc | None:
    """One process's parent and CPU seconds; None when it ended meanwhile."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = [int(x) for x in fields[11:15]]
    return Proc(pid, int(fields[1]), (ticks[0] + ticks[1]) * TICK_S, (ticks[2] + ticks[3]) * TICK_S)


def process_table() -> dict[int, Proc]:
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (proc := read_proc(int(entry.name))) is not None:
            table[proc.pid] = proc
    return table


def children_of(table: Mapping[int, Proc]) -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for proc in table.values():
        children.setdefault(proc.parent, []).append(proc.pid)
    return children


def descendants(root: int, children: Mapping[int, list[int]], stop: set[int]) -> list[int]:
    """`root` and every process below it, not descending into the pids in `stop`."""
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(c for c in children.get(pid, []) if c not in stop)
    return found


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of `root` and its live descendants, plus the children they have reaped."""
    table = process_table()
    pids = descendants(root, children_of(table), set()) if root in table else []
    return sum(table[p].own_s + table[p].reaped_s for p in pids)


def processes_flag(flag: str, count: int, *command: str) -> tuple[str, ...]:
    """`flag count` when `agent-eval *command` has `flag` (its default may differ from 1); nothing
    when it has not and `count` is 1 (a build without it runs one process)."""
    helped = subprocess.run([AGENT_EVAL, *command, "--help"], capture_output=True, text=True, check=False)
    usage = helped.stdout
    if flag in usage:
        return (flag, str(count))
    if count > 1:
        named = " ".join(command)
        raise RuntimeError(f"`agent-eval {named}` of this build has no {flag}: it runs one process")
    return ()


def speed_probe_s(iterations: int = 5_000_000) -> float:
    """CPU seconds of a fixed pure-Python loop: how fast this machine runs right now. A virtual
    machine's speed drifts (here by a third within an hour), so figures taken at different
    times compare only alongside this."""
    started, total = time.process_time(), 0
    for i in range(iterations):
        total += i * i
    return time.process_time() - started


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy so far, all cores together (all but idle and iowait)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(x) for x in fields]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> dict[str, float]:
    """CPU seconds so far: the whole machine's busy time, and PostgreSQL's and Kafka's processes."""
    busy = machine_busy_seconds()
    by_name = {"postgres": 0.0, "kafka": 0.0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            if comm in ("postgres", "java"):
                by_name["postgres" if comm == "postgres" else "kafka"] += cpu_seconds(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue  # the process ended meanwhile
    return {"machine (2 cores)": busy / 2, **by_name}


def peak_rss_mb(pid: int) -> float:
    return proc_status_kb(pid, "VmHWM") / 1024


def rss_mb(pid: int) -> float:
    return proc_status_kb(pid, "VmRSS") / 1024


def wait_ready(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 — our own server
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not become ready in {timeout_s} s")
        time.sleep(0.1)


def http(
    method: str, url: str, key: str, body: Mapping[str, object] | None = None, *, timeout_s: float = 30.0
) -> dict[str, object]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 — our own server
    request.add_header("Authorization", f"Bearer {key}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 — our own server
        parsed: dict[str, object] = json.loads(response.read())
        return parsed


def create_case(
    base: str,
    key: str,
    *,
    agent: Mapping[str, object],
    persona: Mapping[str, object],
    case: Mapping[str, object],
    timeout_s: float = 30.0,
) -> str:
    """POST "Bench agent", "Bench caller" and "Bench case" on the two, each with the other fields
    given; the case's id."""

    def post(path: str, body: Mapping[str, object]) -> object:
        return http("POST", f"{base}{path}", key, body, timeout_s=timeout_s)["id"]

    agent_id = post("/agents", {"name": "Bench agent", **agent})
    persona_id = post("/agent-eval/personas", {"name": "Bench caller", **persona})
    case_id = post(
        "/agent-eval/cases", {"name": "Bench case", "agent_id": agent_id, "persona_id": persona_id, **case}
    )
    return str(case_id)


def metric(url: str, name: str) -> float:
    """A Prometheus metric summed over its labels (0 when absent)."""
    total = 0.0
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 — our own server
        for line in response.read().decode().splitlines():
            if line.startswith((f"{name} ", f"{name}{{")):
                total += float(line.rsplit(" ", 1)[1])
    return total


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else float("nan")


DURABLE_SETTINGS: Mapping[str, str] = {**pgserver.DEV_SETTINGS, "max_connections": "300"}


@contextlib.contextmanager
def bench_database_server(durable: bool, extra: Mapping[str, str] | None = None) -> Iterator[str | None]:
    """The PostgreSQL server a benchmark uses: with `durable`, a server of its own with production
    settings (fsync and synchronous commits on, plus `extra`) in a temporary directory, stopped at
    the end; otherwise the test server from `AGENT_EVAL_DATABASE_URL` (durability off: faster, not
    production-like). None when neither is available (after saying why)."""
    if not durable:
        yield database_server()
        return
    with tempfile.TemporaryDirectory(prefix="agent-eval-bench-pg-") as folder:
        server = pgserver.start(Path(folder), settings={**DURABLE_SETTINGS, **(extra or {})})
        try:
            yield server.url()
        finally:
            pgserver.stop(Path(folder))
