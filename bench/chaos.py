"""The chaos suite (issue 13): the whole pipeline as separate processes — a gateway, two relays,
two executors, two scorers, two billers — on a PostgreSQL server and a Kafka broker of its own,
a steady load of runs through the HTTP API (idempotency keys, client retries), kill -9 of random
role processes at random moments, a PostgreSQL crash and a broker restart; then a drain and the
invariants, checked in SQL. Prints a table of figures; exits 1 when an invariant fails.

    .venv/bin/python -m bench.chaos                  # full: 1,000 runs, every role killed ≥ 3 times
    .venv/bin/python -m bench.chaos --short          # CI: 200 runs, well inside 90 s
    .venv/bin/python -m bench.chaos --fast-database  # the test server's settings: see the README

PostgreSQL runs with production durability (fsync, synchronous_commit on) unless
`--fast-database`: then a crash may lose commits already acknowledged, so PostgreSQL crashes three
times instead of once and lost acknowledged runs are reported as a finding, not a failure.
Needs Java and the Kafka jars (fetched into `.services/` by `scripts/services up`, or here on
first use); nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import asyncpg

from bench.chaos_faults import FaultPlan, Monkey, plan_faults
from bench.chaos_invariants import check_answers, check_client, check_database, check_exits, check_ready
from bench.chaos_load import Driver
from bench.chaos_report import Outcome, figures, print_report
from bench.chaos_services import Broker, Database, Fleet
from bench.stack import DURABLE_SETTINGS, Processes, Seeded, create_case, seed, wait_ready
from schemas.rates import DEFAULT_RATE_CARD
from service.local import pgserver
from service.local.pgserver import free_port

ROLES: Mapping[str, int] = {"gateway": 1, "relay": 2, "executor": 2, "scorer": 2, "biller": 2}
SCRIPT = tuple(f"Question number {i}, please answer it." for i in range(1, 5))
CREDITS_CENTS = 100_000_000
TOPIC_PREFIX = "chaos."


@dataclass(frozen=True)
class Plan:
    runs: int
    rate: float  # triggers per second
    latency_s: float  # the scripted model's latency per call
    kills: int
    kills_per_role: int
    restart_after_s: tuple[float, float]
    database_crashes: int
    database_down_s: float
    lease_ttl_s: float  # longer than a database outage (crash recovery included) plus a renewal period
    broker_crash: bool
    drain_s: float
    durable: bool


def plan_of(args: argparse.Namespace) -> Plan:
    """--short: about 200 runs in 25 s of load, each role killed twice; full: ≥ 1,000 runs, each
    role killed at least three times, the broker SIGKILLed rather than stopped."""
    durable = not args.fast_database
    if args.short:
        return Plan(
            runs=args.runs or 200,
            rate=8.0,
            latency_s=0.2,
            kills=10,
            kills_per_role=2,
            restart_after_s=(0.5, 1.5),
            database_crashes=1 if durable else 3,
            database_down_s=1.5,
            lease_ttl_s=15.0,
            broker_crash=False,
            drain_s=45.0 if durable else 300.0,
            durable=durable,
        )
    runs = args.runs or 1000
    return Plan(
        runs=runs,
        rate=10.0,
        latency_s=0.3,
        kills=max(len(ROLES) * 3, runs // 40),
        kills_per_role=3,
        restart_after_s=(0.5, 3.0),
        database_crashes=1 if durable else 3,
        database_down_s=3.0,
        lease_ttl_s=20.0,
        broker_crash=True,
        drain_s=180.0 if durable else 300.0,
        durable=durable,
    )


def role_env(seeded: Seeded, bootstrap: str, port: int, plan: Plan) -> dict[str, str]:
    """Every role's settings: the suite's database, broker and topics; leases long enough to ride
    out the database outage, swept twice a second; a dead group member noticed within 3 s."""
    return {
        "AGENT_EVAL_DATABASE_URL": seeded.database_url,
        "AGENT_EVAL_KAFKA_BOOTSTRAP": bootstrap,
        "AGENT_EVAL_TOPIC_PREFIX": TOPIC_PREFIX,
        "AGENT_EVAL_TOPIC_PARTITIONS": "4",
        "AGENT_EVAL_PORT": str(port),
        "AGENT_EVAL_LOG_FORMAT": "json",
        "AGENT_EVAL_RATE_CARD": DEFAULT_RATE_CARD.model_dump_json(),
        "AGENT_EVAL_MAX_INFLIGHT_RUNS_PER_COMPANY": "100000",
        "AGENT_EVAL_SCRIPTED_LATENCY_S": str(plan.latency_s),
        "AGENT_EVAL_LEASE_TTL_S": str(plan.lease_ttl_s),
        "AGENT_EVAL_MAINTENANCE_INTERVAL_S": "0.5",
        "AGENT_EVAL_DISPATCH_STALE_S": "5",
        "AGENT_EVAL_RELAY_LOCK_POLL_S": "0.5",
        "AGENT_EVAL_CONSUMER_SESSION_TIMEOUT_MS": "3000",
        "AGENT_EVAL_CONSUMER_HEARTBEAT_INTERVAL_MS": "500",
        "AGENT_EVAL_DB_POOL_MAX_SIZE": "10",
    }


def build_fleet(processes: Processes, gateway_port: int) -> Fleet:
    fleet = Fleet(processes)
    for role, count in ROLES.items():
        for index in range(1, count + 1):
            if role == "gateway":
                fleet.add(role, index, f"http://127.0.0.1:{gateway_port}/readyz", {})
            else:
                port = free_port()
                fleet.add(
                    role, index, f"http://127.0.0.1:{port}/readyz", {"AGENT_EVAL_HEALTH_PORT": str(port)}
                )
    return fleet


def make_case(base: str, key: str) -> str:
    agent = {
        "system_prompt": "You answer questions briefly.",
        "model": "scripted",
        "rules": [{"when": "question", "say": "Here is a short answer to your question."}],
    }
    persona = {"identity_prompt": "You ask questions.", "model": "scripted", "script": list(SCRIPT)}
    case = {
        "scenario": "The caller asks four questions.",
        "max_turns": 2 * len(SCRIPT) + 2,
        "success_criteria": [{"type": "must_say", "pattern": "short answer"}],
    }
    return create_case(base, key, agent=agent, persona=persona, case=case)


class Timeline:
    """Seconds since the load started, the one clock of the load, the faults and the checks."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._t0


@dataclass(frozen=True)
class Stack:
    database: Database
    broker: Broker
    fleet: Fleet
    seeded: Seeded
    base: str
    case_id: str


_PROGRESS = """
SELECT count(*) FILTER (WHERE queue_status = 'done') AS done, count(*) AS found,
       (SELECT count(*) FROM outbox_pending) AS unsent
FROM eval_runs WHERE id = ANY($1::uuid[])
"""

_DURABILITY = """
SELECT name, setting FROM pg_settings
WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes') ORDER BY name
"""


async def drain(database_url: str, ids: Sequence[str], timeout_s: float) -> float | None:
    """Seconds until every acknowledged run that exists is done and the outbox is published;
    None if that did not happen within `timeout_s`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            conn = await asyncpg.connect(database_url)
            try:
                row = await conn.fetchrow(_PROGRESS, list(ids))
            finally:
                await conn.close()
            if row is not None and row["done"] == row["found"] and row["unsent"] == 0:
                return time.monotonic() - started
        await asyncio.sleep(0.5)
    return None


async def unleash(stack: Stack, plan: Plan, faults: FaultPlan, rng: random.Random) -> Outcome:
    """The load and the faults at once, then the drain and the checks."""
    clock = Timeline()
    monkey = Monkey(stack.fleet, stack.database, stack.broker, faults, rng, clock.now)
    driver = Driver(stack.base, stack.seeded.key, stack.case_id, clock.now)
    stop = asyncio.Event()
    supervisor = asyncio.create_task(monkey.supervise(stop))
    load, _ = await asyncio.gather(driver.run(plan.runs, plan.rate), monkey.run())
    load_s = clock.now()
    ids = list(load.acknowledged.values())
    drained = await drain(stack.seeded.database_url, ids, plan.drain_s)
    stop.set()
    await supervisor
    ready = await asyncio.to_thread(check_ready, stack.fleet)
    conn = await asyncpg.connect(stack.seeded.database_url)
    try:
        verdicts = await check_database(
            conn,
            company_id=stack.seeded.company_id,
            acknowledged=ids,
            script=SCRIPT,
            card=DEFAULT_RATE_CARD,
            lost_is_finding=not plan.durable,
        )
        counted = await figures(conn, stack.seeded.company_id)
    finally:
        await conn.close()
    verdicts += check_answers(load.answers, monkey.outages)
    verdicts += check_client(load, plan.runs)
    verdicts += [check_exits(monkey.exits, len(stack.fleet.processes.started)), ready]
    return Outcome(load, monkey, load_s, drained, verdicts, counted)


def say(message: str) -> None:
    print(f"chaos: {message}", flush=True)


@contextlib.contextmanager
def services(plan: Plan, folder: Path, logs: Path) -> Iterator[Stack]:
    """PostgreSQL, Kafka, a seeded database, the topics and every role process, ready; all of
    them stopped on the way out, however it is left."""
    with contextlib.ExitStack() as stack:
        stack.callback(keep_server_logs, folder, logs)  # runs last, once both servers have stopped
        settings = DURABLE_SETTINGS if plan.durable else pgserver.TEST_SETTINGS
        database = Database.start(folder / "postgres", settings)
        stack.callback(database.stop)
        durability = asyncio.run(durability_settings(database.url()))
        say(f"PostgreSQL {database.server.major} on port {database.server.port}: {durability}")
        broker = Broker.start(folder, say)
        stack.callback(broker.stop)
        say(f"Kafka on {broker.bootstrap}")
        seeded = asyncio.run(seed(database.url(), credits_cents=CREDITS_CENTS))
        port = free_port()
        processes = Processes(role_env(seeded, broker.bootstrap, port, plan), logs)
        processes.run("kafka", "init")
        fleet = build_fleet(processes, port)
        stack.callback(fleet.kill_all)
        for member in fleet.members:
            fleet.start(member)
        fleet.wait_ready()
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/readyz")
        yield Stack(database, broker, fleet, seeded, base, make_case(base, seeded.key))


async def durability_settings(url: str) -> str:
    """What the running server really does about durability, as `name=value` pairs."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(_DURABILITY)
    finally:
        await conn.close()
    return ", ".join(f"{r['name']}={r['setting']}" for r in rows)


def keep_server_logs(folder: Path, logs: Path) -> None:
    """PostgreSQL's and Kafka's own logs next to the roles' (they are the evidence of a failure)."""
    for log in [*folder.glob("postgres/*/server.log"), folder / "kafka" / "server.log"]:
        with contextlib.suppress(OSError):
            shutil.copyfile(log, logs / f"{log.parent.name}-server.log")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=0, help="runs to trigger (full: 1000, short: 200)")
    parser.add_argument("--short", action="store_true", help="the CI version: ~200 runs within 90 s")
    parser.add_argument("--fast-database", action="store_true", help="fsync and synchronous_commit off")
    parser.add_argument("--seed", type=int, default=None, help="the fault plan's random seed")
    parser.add_argument("--logs", type=Path, default=None, help="keep the processes' logs in this folder")
    return parser.parse_args()


def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds like Ctrl-C: every process and folder is cleaned up


def main() -> int:
    args = parse()
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    plan = plan_of(args)
    seed_value = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    rng = random.Random(seed_value)  # noqa: S311 — a fault plan, not a secret
    faults = plan_faults(
        rng,
        window_s=plan.runs / plan.rate,
        roles=list(ROLES),
        kills=plan.kills,
        kills_per_role=plan.kills_per_role,
        restart_after_s=plan.restart_after_s,
        database_crashes=plan.database_crashes,
        database_down_s=plan.database_down_s,
        broker_crash=plan.broker_crash,
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="agent-eval-chaos-") as tmp:
        logs = args.logs or Path(tmp) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with services(plan, Path(tmp), logs) as stack:
            startup_s = time.monotonic() - started
            window = f"{plan.runs / plan.rate:.0f} s"
            say(f"ready in {startup_s:.1f} s; load and faults for {window} (seed {seed_value})")
            outcome = asyncio.run(unleash(stack, plan, faults, rng))
    times = {"start-up": startup_s, "load (with faults)": outcome.load_s}
    times["drain"] = outcome.drain_s if outcome.drain_s is not None else float("nan")
    times["wall"] = time.monotonic() - started
    durability = (
        "durable (fsync, synchronous_commit on)" if plan.durable else "fast (fsync, synchronous_commit off)"
    )
    title = f"{plan.runs} runs at {plan.rate:g}/s, PostgreSQL {durability}, seed {seed_value}"
    print_report(outcome, title=title, roles=ROLES, times=times)
    if outcome.failed() and args.logs is None:
        print("chaos: rerun with --logs DIR (and --seed) to keep every process's log")
    return 1 if outcome.failed() else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("chaos: interrupted; every process and folder it made is gone")
        sys.exit(130)
