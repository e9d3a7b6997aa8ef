"""`agent-eval consume executor --processes N` on real Kafka and PostgreSQL: the children share
the group's partitions and complete every run once; one health port answers for all of them;
SIGTERM drains every child (their runs are handed back); a child killed with SIGKILL is
restarted and its runs still complete exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from uuid import UUID

import aiohttp
import pytest

from service.bus.kafka import KafkaBus
from service.bus.topics import topic_specs
from service.core.settings import Settings
from service.db.postgres import Pool, connection
from service.local.pgserver import free_port
from tests.support.executor_processes import logged, role_env
from tests.support.factories import make_company
from tests.support.long_runs import ANSWERS, LINES, RULES, SCRIPT, consuming
from tests.support.processes import AGENT_EVAL, Spawned, spawned
from tests.support.scenarios import (
    charges,
    event_types,
    finished,
    make_case,
    scripted_agent,
    scripted_persona,
    trigger,
    turn_rows,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.kafka

PARTITIONS = 4


@dataclass(frozen=True)
class Pod:
    relay: Spawned
    supervisor: Spawned
    health: str  # the supervisor's health base URL

    def tail(self, lines: int = 80) -> str:
        parts = [
            f"--- {' '.join(c.argv[1:])} ---\n" + "\n".join(c.output().splitlines()[-lines:])
            for c in (self.relay, self.supervisor)
        ]
        return "\n".join(parts)


@contextlib.contextmanager
def pod(env: dict[str, str], processes: int = 2) -> Iterator[Pod]:
    """The relay and one `consume executor --processes N` supervisor on a known health port."""
    port = free_port()
    argv = [AGENT_EVAL, "consume", "executor", "--processes", str(processes)]
    supervised = {**env, "AGENT_EVAL_HEALTH_PORT": str(port)}
    with spawned([AGENT_EVAL, "relay"], env) as relay, spawned(argv, supervised) as supervisor:
        yield Pod(relay, supervisor, f"http://127.0.0.1:{port}")


async def joined(running: Pod, members: int) -> None:
    """The relay is active and `members` executors joined the group."""
    await logged(running.relay, "relay_active")

    async def count() -> int:
        if running.supervisor.proc.poll() is not None:
            raise AssertionError(running.supervisor.output())
        return running.supervisor.output().count('"consumer_started"')

    await eventually(count, until=lambda n: n >= members, timeout_s=60, what=f"{members} executors to join")


async def spread(running: Pod) -> None:
    """Each of two children holds a share of the partitions (the group has settled)."""

    async def shares() -> int:
        lines = running.supervisor.output().splitlines()
        return sum('"partitions_assigned"' in line and f"[0-{PARTITIONS - 1}]" not in line for line in lines)

    await eventually(shares, until=lambda n: n >= 2, timeout_s=60, what="the partitions to be shared")


@contextlib.asynccontextmanager
async def scorer_and_biller(settings: Settings, pool: Pool, kafka: KafkaBus) -> AsyncIterator[None]:
    async with consuming(settings, pool, kafka, "scorer", "biller"):
        yield


async def new_case(pool: Pool) -> tuple[UUID, UUID]:
    company = await make_company(pool, balance_cents=1_000_000)
    agent = scripted_agent(greeting_message=None, rules=RULES, tools=[])
    case_id = await make_case(pool, company.id, agent=agent, persona=scripted_persona(SCRIPT), max_turns=50)
    return company.id, case_id


def pid_of(claimed_by: str | None) -> int:
    assert claimed_by is not None
    return int(claimed_by.rsplit(":", 2)[1])


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as answer:
        return answer.status, await answer.text()


async def assert_completed_once(pool: Pool, run_id: UUID) -> None:
    events = await event_types(pool, run_id)
    assert [events.count(e) for e in ("completed", "scored", "billed", "done")] == [1, 1, 1, 1]
    rows = await turn_rows(pool, run_id)
    assert [r["turn_number"] for r in rows] == list(range(1, 2 * LINES + 2))
    assert [r["text"] for r in rows if r["role"] == "agent"] == ANSWERS
    assert len(await charges(pool, run_id)) == 1


async def test_children_share_the_partitions_complete_every_run_and_answer_on_one_port(
    pool: Pool, settings: Settings, kafka: KafkaBus, kafka_bootstrap: str, database_url: str
) -> None:
    await kafka.create_topics(topic_specs(settings.topic_prefix, PARTITIONS, 1))
    company_id, case_id = await new_case(pool)
    env = role_env(
        database_url,
        kafka_bootstrap,
        settings.topic_prefix,
        AGENT_EVAL_TOPIC_PARTITIONS=str(PARTITIONS),
        AGENT_EVAL_LOG_LEVEL="debug",  # `partitions_assigned`
    )
    with pod(env) as running:
        try:
            async with scorer_and_biller(settings, pool, kafka):
                await joined(running, 2)
                await spread(running)
                ready = await eventually(
                    lambda: get(f"{running.health}/readyz"), until=lambda r: r[0] == 200, what="ready"
                )
                run_ids = [await trigger(pool, settings, company_id, case_id) for _ in range(16)]
                done = [await finished(pool, run_id, timeout_s=60) for run_id in run_ids]
                status, metrics = await get(f"{running.health}/metrics")
                alive = await get(f"{running.health}/healthz")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{running.tail()}") from exc
    assert '"process-0":"ok"' in ready[1]
    assert '"process-1":"ok"' in ready[1]
    assert alive[0] == 200
    assert status == 200
    assert 'process="0"' in metrics
    assert 'process="1"' in metrics
    assert "agent_eval_runs_ended_total" in metrics
    pids = {pid_of(run.claimed_by) for run in done}
    assert len(pids) == 2, pids  # the runs were spread over both children
    assert running.supervisor.pid not in pids
    for run in done:
        assert (run.status, run.termination_reason, run.attempt) == ("completed", "persona_goodbye", 1)
        await assert_completed_once(pool, run.id)


async def test_sigterm_drains_every_child_and_their_runs_are_handed_back(
    pool: Pool, settings: Settings, kafka: KafkaBus, kafka_bootstrap: str, database_url: str
) -> None:
    await kafka.create_topics(topic_specs(settings.topic_prefix, PARTITIONS, 1))
    company_id, case_id = await new_case(pool)
    # Leases of 60 s: only a hand-back explains a resumption within the test's time.
    env = role_env(
        database_url,
        kafka_bootstrap,
        settings.topic_prefix,
        AGENT_EVAL_TOPIC_PARTITIONS=str(PARTITIONS),
        AGENT_EVAL_SCRIPTED_LATENCY_S="0.25",
        AGENT_EVAL_LEASE_TTL_S="60",
        AGENT_EVAL_SHUTDOWN_PAUSE_S="0.5",
    )
    with pod(env) as running:
        try:
            async with scorer_and_biller(settings, pool, kafka):
                await joined(running, 2)
                run_ids = [await trigger(pool, settings, company_id, case_id) for _ in range(8)]
                await eventually(
                    lambda: playing(pool, run_ids), until=bool, timeout_s=30, what="runs playing"
                )
                running.supervisor.signal(signal.SIGTERM)  # the whole process group, as a terminal does
                draining = await eventually(
                    lambda: get(f"{running.health}/readyz"), until=lambda r: r[0] == 503, what="draining"
                )
                assert await asyncio.to_thread(running.supervisor.wait, 30) == 0
                output = running.supervisor.output()
                assert output.count('"consumer_stopped"') == 2, output
                assert "runs_handed_back" in output
                with spawned([AGENT_EVAL, "consume", "executor", "--processes", "1"], env) as successor:
                    done = [await finished(pool, run_id, timeout_s=60) for run_id in run_ids]
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{running.tail()}") from exc
    assert draining[0] == 503
    assert "draining" in draining[1]
    for run in done:
        assert (run.status, run.termination_reason) == ("completed", "persona_goodbye")
        assert pid_of(run.claimed_by) == successor.pid
        await assert_completed_once(pool, run.id)


async def test_a_child_killed_with_sigkill_is_restarted_and_its_runs_complete_once(
    pool: Pool, settings: Settings, kafka: KafkaBus, kafka_bootstrap: str, database_url: str
) -> None:
    await kafka.create_topics(topic_specs(settings.topic_prefix, PARTITIONS, 1))
    company_id, case_id = await new_case(pool)
    env = role_env(
        database_url,
        kafka_bootstrap,
        settings.topic_prefix,
        AGENT_EVAL_TOPIC_PARTITIONS=str(PARTITIONS),
        AGENT_EVAL_SCRIPTED_LATENCY_S="0.2",
    )
    with pod(env) as running:
        try:
            async with scorer_and_biller(settings, pool, kafka):
                await joined(running, 2)
                run_ids = [await trigger(pool, settings, company_id, case_id) for _ in range(8)]
                held = await eventually(
                    lambda: playing(pool, run_ids), until=bool, timeout_s=30, what="playing"
                )
                victim, victims_runs = next(iter(held.items()))
                os.kill(victim, signal.SIGKILL)
                await logged(running.supervisor, '"child_exited"')
                await joined(running, 3)  # the restarted child joined the group again
                done = [await finished(pool, run_id, timeout_s=60) for run_id in run_ids]
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{running.tail()}") from exc
        assert running.supervisor.proc.poll() is None  # the supervisor kept going
    assert running.supervisor.output().count('"child_started"') == 3
    for run in done:
        assert (run.status, run.termination_reason) == ("completed", "persona_goodbye")
        await assert_completed_once(pool, run.id)
        if run.id in victims_runs:
            assert run.attempt >= 2
            assert pid_of(run.claimed_by) != victim


async def playing(pool: Pool, run_ids: list[UUID]) -> dict[int, set[UUID]]:
    """Once every run is being played (a few turns each), the runs each executor pid holds."""
    async with connection(pool) as conn:
        rows = await conn.fetch(
            "SELECT r.id, r.claimed_by,"
            " (SELECT count(*) FROM eval_run_turns t WHERE t.run_id = r.id) AS turns"
            " FROM eval_runs r WHERE r.id = ANY($1::uuid[])",
            run_ids,
        )
    if any(row["claimed_by"] is None or row["turns"] < 2 for row in rows):
        return {}
    held: dict[int, set[UUID]] = {}
    for row in rows:
        held.setdefault(pid_of(row["claimed_by"]), set()).add(row["id"])
    return held
