"""Roles ride out their dependencies, as real processes: started before PostgreSQL or Kafka is
reachable they stay alive and not ready, then become ready when it answers; the gateway answers
503 meanwhile; the relay survives a database outage and leads again; an executor whose database
drops mid-conversation finishes the run on the same attempt. Outages are made by a TCP proxy in
front of the real servers (`tests/support/outage.py`), so other tests are not disturbed."""

from __future__ import annotations

import asyncio
import os
import subprocess
from urllib.parse import urlsplit

import aiohttp
import pytest

from consumers.runner import ConsumerRunner, RunnerConfig
from schemas.events import Event, EventType
from service.bus.interface import TopicSpec
from service.bus.kafka import KafkaBus
from service.bus.topics import topic_specs
from service.core.settings import Settings
from service.db.postgres import Pool
from service.local.pgserver import free_port
from tests.support.api import Tenant
from tests.support.events import record_for, run_request
from tests.support.executor_processes import fleet, logged, ready, role_env
from tests.support.factories import make_company
from tests.support.long_runs import ANSWERS, LINES, RULES, SCRIPT, all_sent, consuming
from tests.support.outage import outage_proxy
from tests.support.processes import AGENT_EVAL, Spawned, spawned
from tests.support.scenarios import (
    charges,
    finished,
    make_case,
    read_run,
    scripted_agent,
    scripted_persona,
    trigger,
    turn_rows,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.kafka


def server_of(database_url: str) -> str:
    parts = urlsplit(database_url)
    return f"{parts.hostname}:{parts.port}"


async def status(http: aiohttp.ClientSession, url: str) -> int:
    try:
        async with http.get(url) as response:
            return response.status
    except aiohttp.ClientConnectionError:
        return 0


async def alive_and_not_ready(http: aiohttp.ClientSession, base: str, child: Spawned) -> None:
    """Over a few probes: /healthz answers 200, /readyz 503, and the process keeps running."""
    for _ in range(6):
        assert child.proc.poll() is None, child.output()
        assert await status(http, f"{base}/healthz") == 200
        assert await status(http, f"{base}/readyz") == 503
        await asyncio.sleep(0.5)


async def test_a_consumer_started_before_its_database_and_broker_waits_then_becomes_ready(
    database_url: str, kafka_bootstrap: str, settings: Settings, kafka: KafkaBus
) -> None:
    await kafka.create_topics(topic_specs(settings.topic_prefix, 1, 1))
    health = free_port()
    async with (
        outage_proxy(server_of(database_url), start_up=False) as database,
        outage_proxy(kafka_bootstrap, start_up=False) as broker,
    ):
        env = role_env(database.database_url(database_url), broker.address, settings.topic_prefix)
        env["AGENT_EVAL_HEALTH_PORT"] = str(health)
        with spawned([AGENT_EVAL, "consume", "scorer"], env) as scorer:
            base = f"http://127.0.0.1:{health}"
            async with aiohttp.ClientSession() as http:
                await eventually(lambda: status(http, f"{base}/healthz"), until=lambda s: s == 200)
                await alive_and_not_ready(http, base, scorer)
                await logged(scorer, "database_unreachable")
                await logged(scorer, "kafka_unreachable")
                await database.up()
                await broker.up()
                await eventually(
                    lambda: status(http, f"{base}/readyz"), until=lambda s: s == 200, timeout_s=40
                )
                await logged(scorer, "consumer_started")
            assert scorer.proc.poll() is None
    attempts = [line for line in scorer.output().splitlines() if "kafka_unreachable" in line]
    assert len(attempts) >= 2  # one line per attempt


async def test_the_gateway_started_before_its_database_answers_503_then_serves(
    database_url: str, tenant: Tenant
) -> None:
    port = free_port()
    async with outage_proxy(server_of(database_url), start_up=False) as database:
        env = {
            "AGENT_EVAL_DATABASE_URL": database.database_url(database_url),
            "AGENT_EVAL_PORT": str(port),
            "AGENT_EVAL_LOG_FORMAT": "json",
        }
        with spawned([AGENT_EVAL, "serve"], env) as gateway:
            base = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession() as http:
                await eventually(lambda: status(http, f"{base}/healthz"), until=lambda s: s == 200)
                await alive_and_not_ready(http, base, gateway)
                async with http.get(f"{base}/agent-eval/cases", headers=tenant.headers()) as response:
                    assert response.status == 503
                    assert (await response.json())["code"] == "UNAVAILABLE"
                await database.up()
                await eventually(lambda: status(http, f"{base}/readyz"), until=lambda s: s == 200)
                async with http.get(f"{base}/agent-eval/cases", headers=tenant.headers()) as response:
                    assert response.status == 200
            assert gateway.proc.poll() is None


async def test_the_relay_rides_out_a_database_outage_and_leads_again(
    pool: Pool, settings: Settings, kafka: KafkaBus, kafka_bootstrap: str, database_url: str
) -> None:
    await kafka.create_topics(topic_specs(settings.topic_prefix, 1, 1))
    company = await make_company(pool, balance_cents=10_000)
    case_id = await make_case(pool, company.id)
    async with outage_proxy(server_of(database_url)) as database:
        env = role_env(database.database_url(database_url), kafka_bootstrap, settings.topic_prefix)
        env["AGENT_EVAL_RELAY_LOCK_POLL_S"] = "0.2"
        with spawned([AGENT_EVAL, "relay"], env) as relay:
            await logged(relay, "relay_active")
            before = await trigger(pool, settings, company.id, case_id)
            await eventually(lambda: all_sent(pool, before), what="the relay to publish")
            await database.down()
            await logged(relay, "relay_interrupted")
            await asyncio.sleep(2)  # several reconnect attempts fail meanwhile
            assert relay.proc.poll() is None, relay.output()
            await database.up()
            after = await trigger(pool, settings, company.id, case_id)
            await eventually(lambda: all_sent(pool, after), timeout_s=30, what="the relay to publish again")
            assert relay.proc.poll() is None
    assert relay.output().count('"event": "relay_active"') >= 2  # gave the lead up, then took it again


async def test_an_executor_whose_database_drops_mid_run_finishes_it_on_the_same_attempt(
    pool: Pool, settings: Settings, kafka: KafkaBus, kafka_bootstrap: str, database_url: str
) -> None:
    await kafka.create_topics(topic_specs(settings.topic_prefix, 1, 1))
    company = await make_company(pool, balance_cents=10_000)
    agent = scripted_agent(greeting_message=None, rules=RULES, tools=[])
    case_id = await make_case(pool, company.id, agent=agent, persona=scripted_persona(SCRIPT), max_turns=50)
    async with outage_proxy(server_of(database_url)) as database:
        env = role_env(
            database.database_url(database_url),
            kafka_bootstrap,
            settings.topic_prefix,
            AGENT_EVAL_SCRIPTED_LATENCY_S="0.2",
            AGENT_EVAL_LEASE_TTL_S="30",
        )
        with fleet(env, executors=1, roles=()) as running:
            try:
                async with consuming(settings, pool, kafka, "scorer", "biller"):
                    await ready(running)
                    run_id = await trigger(pool, settings, company.id, case_id)
                    await eventually(lambda: turn_rows(pool, run_id), until=lambda rows: len(rows) >= 4)
                    await database.down()
                    await logged(running.executors[0], "conversation_interrupted")
                    await asyncio.sleep(1.5)
                    await database.up()
                    run = await finished(pool, run_id, timeout_s=40)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{running.tail()}") from exc
    assert (run.status, run.termination_reason, run.attempt) == ("completed", "persona_goodbye", 1)
    rows = await turn_rows(pool, run_id)
    assert [r["turn_number"] for r in rows] == list(range(1, 2 * LINES + 2))
    assert [r["text"] for r in rows if r["role"] == "agent"] == ANSWERS
    assert {r["attempt"] for r in rows} == {1}
    assert len(await charges(pool, run_id)) == 1
    assert (await read_run(pool, run_id)).queue_status == "done"


async def test_a_consumer_whose_broker_is_away_when_it_joins_keeps_trying_then_consumes(
    kafka: KafkaBus, kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic, group = f"{topic_prefix}work", f"{topic_prefix}workers"
    await kafka.create_topics([TopicSpec(topic, 1), TopicSpec(f"{topic}.dlq", 1)])
    handled: list[Event] = []

    async def collect(event: Event) -> None:
        handled.append(event)

    async with outage_proxy(kafka_bootstrap, start_up=False) as broker:
        away = KafkaBus(
            broker.address, client_id="join-test", session_timeout_ms=6000, heartbeat_interval_ms=500
        )
        config = RunnerConfig(group=group, topics=[topic], types=frozenset({EventType.RUN_REQUESTED.value}))
        runner = ConsumerRunner(away, config, collect)
        task = asyncio.create_task(runner.run())
        try:
            await asyncio.sleep(3)  # several attempts to join fail meanwhile
            assert not task.done()
            assert not runner.started.is_set()
            await broker.up()
            await asyncio.wait_for(runner.started.wait(), 30)
            event = run_request()
            await kafka.publish([record_for(event, topic)])
            await eventually(lambda: _count(handled), until=lambda n: n == 1, what="the record")
        finally:
            runner.request_stop()
            await task
    assert [e.id for e in handled] == [event.id]


async def _count(items: list[Event]) -> int:
    return len(items)


@pytest.mark.parametrize("argv", [["serve"], ["consume", "scorer"], ["relay"]])
def test_a_database_that_refuses_us_for_good_is_one_clear_line_and_exit_2(
    database_url: str, kafka_bootstrap: str, argv: list[str]
) -> None:
    wrong = urlsplit(database_url)._replace(path="/no_such_database").geturl()
    env = {
        **os.environ,
        "AGENT_EVAL_DATABASE_URL": wrong,
        "AGENT_EVAL_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "AGENT_EVAL_PORT": str(free_port()),
        "AGENT_EVAL_HEALTH_PORT": "0",
        "AGENT_EVAL_LOG_FORMAT": "json",
    }
    done = subprocess.run(
        [AGENT_EVAL, *argv], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2, done.stdout + done.stderr
    refusal = 'agent-eval: PostgreSQL refused the connection: database "no_such_database" does not exist'
    assert refusal in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
