"""SIGTERM on real processes under load, as Kubernetes stops a pod.

The gateway fails readiness at once and keeps serving through its pause, then answers every
blocked request 202 with its `Location`, closes its event streams and exits 0. An executor playing
runs hands them back at once, so the other executor resumes them long before any lease expires;
each run still completes with dense turns and one charge. A relay hands the outbox to its standby.
"""

from __future__ import annotations

import asyncio
import signal
from uuid import UUID

import aiohttp
import pytest

from service.bus.kafka import KafkaBus
from service.bus.topics import topic_specs
from service.core.settings import Settings
from service.db.postgres import Pool, connection
from service.local.pgserver import free_port
from tests.support.api import Tenant
from tests.support.executor_processes import Fleet, fleet, logged, ready, role_env
from tests.support.factories import make_company
from tests.support.long_runs import ANSWERS, LINES, RULES, SCRIPT, all_sent, consuming
from tests.support.processes import AGENT_EVAL, Spawned, spawned
from tests.support.scenarios import (
    assert_billed_for_turns,
    charges,
    finished,
    make_case,
    scripted_agent,
    scripted_persona,
    trigger,
    turn_rows,
)
from tests.support.sse import SseReader
from tests.support.waiting import eventually

BLOCKED = 8
PAUSE_S = 2.0


async def gateway_ready(http: aiohttp.ClientSession, base: str) -> bool:
    try:
        async with http.get(f"{base}/readyz") as response:
            return response.status == 200
    except aiohttp.ClientConnectionError:
        return False


async def readiness(http: aiohttp.ClientSession, base: str) -> tuple[int, object]:
    async with http.get(f"{base}/readyz") as response:
        return response.status, await response.json()


async def queued_runs(pool: Pool, company_id: str) -> list[UUID]:
    async with connection(pool) as conn:
        rows = await conn.fetch(
            "SELECT id FROM eval_runs WHERE company_id = $1 AND status = 'queued' ORDER BY id",
            UUID(company_id),
        )
    return [row["id"] for row in rows]


async def test_sigterm_on_a_busy_gateway_fails_readiness_then_answers_blocked_posts_202_and_exits(
    pool: Pool, database_url: str, tenant: Tenant
) -> None:
    case_id = await make_case(pool, UUID(tenant.company_id))
    port = free_port()
    env = {
        "AGENT_EVAL_DATABASE_URL": database_url,
        "AGENT_EVAL_PORT": str(port),
        "AGENT_EVAL_SHUTDOWN_PAUSE_S": str(PAUSE_S),
        "AGENT_EVAL_SHUTDOWN_TIMEOUT_S": "20",
        "AGENT_EVAL_LOG_FORMAT": "json",
    }
    base = f"http://127.0.0.1:{port}"
    headers = {**tenant.headers(), "Prefer": "wait=55"}
    with spawned([AGENT_EVAL, "serve"], env) as gateway:
        async with aiohttp.ClientSession() as http:
            await eventually(lambda: gateway_ready(http, base), what=f"the gateway:\n{gateway.output()}")
            # Load: blocked POSTs (no executor runs, so they would wait 55 s) and an event stream.
            posts = [
                asyncio.create_task(
                    http.post(f"{base}/agent-eval/cases/{case_id}/run", json={}, headers=headers)
                )
                for _ in range(BLOCKED)
            ]
            run_ids = await eventually(
                lambda: queued_runs(pool, tenant.company_id), until=lambda ids: len(ids) == BLOCKED
            )
            stream_response = await http.get(
                f"{base}/agent-eval/runs/{run_ids[0]}/events", headers=tenant.headers()
            )
            stream = SseReader(stream_response)

            gateway.signal(signal.SIGTERM)
            _, body = await eventually(
                lambda: readiness(http, base), until=lambda answer: answer[0] == 503, what="readiness to fail"
            )
            assert body == {"status": "unavailable", "checks": {"shutdown": "draining"}}
            # Still serving during the pause: reads answer, blocked requests keep waiting.
            async with http.get(f"{base}/agent-eval/runs/{run_ids[1]}", headers=tenant.headers()) as read:
                assert read.status == 200
            assert not any(post.done() for post in posts)

            answered: list[UUID] = []
            for answer in await asyncio.gather(*posts):
                assert answer.status == 202
                run = await answer.json()
                assert answer.headers["Location"] == f"/agent-eval/runs/{run['id']}"
                assert answer.headers["Retry-After"]
                assert run["status"] == "queued"
                answered.append(UUID(run["id"]))
            assert sorted(answered) == run_ids
            await stream.events(timeout_s=30)  # returns at EOF: the server closed the stream
            stream_response.release()

        assert await asyncio.to_thread(gateway.wait, 30) == 0
    output = gateway.output()
    assert '"event": "draining"' in output
    assert '"event": "gateway_stopped"' in output
    assert await queued_runs(pool, tenant.company_id) == run_ids  # every run kept, none started


# --- an executor under load ----------------------------------------------------------------------

RUNS = 6


async def test_sigterm_on_a_busy_executor_hands_its_runs_over_at_once_and_each_completes_once(
    pool: Pool, settings: Settings, kafka: KafkaBus, kafka_bootstrap: str, database_url: str
) -> None:
    await kafka.create_topics(topic_specs(settings.topic_prefix, 1, 1))
    company_id = await _company(pool)
    agent = scripted_agent(greeting_message=None, rules=RULES, tools=[])
    case_id = await make_case(pool, company_id, agent=agent, persona=scripted_persona(SCRIPT), max_turns=50)
    # Leases of 60 s: only a hand-back explains a resumption within the test's time.
    env = role_env(
        database_url,
        kafka_bootstrap,
        settings.topic_prefix,
        AGENT_EVAL_SCRIPTED_LATENCY_S="0.25",
        AGENT_EVAL_LEASE_TTL_S="60",
        AGENT_EVAL_SHUTDOWN_PAUSE_S="0.5",
    )
    with fleet(env, executors=2, roles=()) as running:
        try:
            async with consuming(settings, pool, kafka, "scorer", "biller"):
                await ready(running)
                run_ids = [await trigger(pool, settings, company_id, case_id) for _ in range(RUNS)]
                victim, held = await _busiest_executor(pool, running, run_ids)
                victim.signal(signal.SIGTERM)
                assert await asyncio.to_thread(victim.wait, 30) == 0
                assert victim.find("runs_handed_back") is not None, victim.output()
                done = [await finished(pool, run_id, timeout_s=45) for run_id in run_ids]
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{running.tail()}") from exc
    [survivor] = [child for child in running.executors if child is not victim]
    for run in done:
        assert (run.status, run.termination_reason) == ("completed", "persona_goodbye")
        rows = await turn_rows(pool, run.id)
        assert [r["turn_number"] for r in rows] == list(range(1, 2 * LINES + 2))
        assert [r["text"] for r in rows if r["role"] == "agent"] == ANSWERS
        assert len(await charges(pool, run.id)) == 1
        await assert_billed_for_turns(pool, run)
    resumed = [run for run in done if run.id in held]
    assert resumed, "the stopped executor held no run"
    for run in resumed:
        assert run.claimed_by is not None
        assert running.executor_named(run.claimed_by) is survivor


async def _company(pool: Pool) -> UUID:
    return (await make_company(pool, balance_cents=100_000)).id


async def _busiest_executor(pool: Pool, running: Fleet, run_ids: list[UUID]) -> tuple[Spawned, set[UUID]]:
    """Once every run is being played (a few turns each), the executor holding the most of them
    and the runs it holds."""

    async def claims() -> dict[str, set[UUID]]:
        async with connection(pool) as conn:
            rows = await conn.fetch(
                "SELECT r.id, r.claimed_by,"
                " (SELECT count(*) FROM eval_run_turns t WHERE t.run_id = r.id) AS turns"
                " FROM eval_runs r WHERE r.id = ANY($1::uuid[])",
                run_ids,
            )
        if any(row["claimed_by"] is None or row["turns"] < 2 for row in rows):
            return {}
        held: dict[str, set[UUID]] = {}
        for row in rows:
            held.setdefault(row["claimed_by"], set()).add(row["id"])
        return held

    held = await eventually(claims, until=bool, timeout_s=30, what="every run to be playing")
    claimed_by, runs = max(held.items(), key=lambda item: len(item[1]))
    victim = running.executor_named(claimed_by)
    assert victim is not None
    return victim, runs


# --- the relay ---------------------------------------------------------------------------------


@pytest.fixture
async def relay_env(
    settings: Settings, kafka: KafkaBus, kafka_bootstrap: str, database_url: str
) -> dict[str, str]:
    await kafka.create_topics(topic_specs(settings.topic_prefix, 1, 1))
    return role_env(database_url, kafka_bootstrap, settings.topic_prefix, AGENT_EVAL_RELAY_LOCK_POLL_S="0.2")


async def test_sigterm_on_the_active_relay_hands_the_outbox_to_the_standby(
    pool: Pool, settings: Settings, relay_env: dict[str, str]
) -> None:
    company_id = await _company(pool)
    case_id = await make_case(pool, company_id)
    with spawned([AGENT_EVAL, "relay"], relay_env) as first:
        await logged(first, "relay_active")
        with spawned([AGENT_EVAL, "relay"], relay_env) as standby:
            before = await trigger(pool, settings, company_id, case_id)
            await eventually(lambda: all_sent(pool, before), what="the active relay to publish")
            assert standby.find("relay_active") is None  # one relay leads at a time
            first.signal(signal.SIGTERM)
            assert await asyncio.to_thread(first.wait, 30) == 0
            assert first.find("relay_inactive") is not None
            await logged(standby, "relay_active", timeout_s=10)
            after = await trigger(pool, settings, company_id, case_id)
            await eventually(
                lambda: all_sent(pool, after), what="the standby to publish the new run's request"
            )
