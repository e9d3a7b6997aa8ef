"""A suite's `parallelism` and the company's in-flight cap hold across executor processes: two
`agent-eval consume executor` processes on real Kafka play the runs, the model they call (a real
chat-completions server) records how many conversations talk to it at once, per suite."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any
from uuid import UUID

import pytest
from aiohttp import web

from service.bus.kafka import KafkaBus
from service.bus.topics import topic_specs
from service.core.settings import ProviderConfig, Settings
from service.db.postgres import Pool, connection
from tests.support.executor_processes import fleet, ready, role_env
from tests.support.factories import make_company
from tests.support.fake_llm import FakeLLM, Reply, chat_completions_server
from tests.support.suites import make_suite, start_in_process
from tests.support.waiting import eventually

pytestmark = pytest.mark.kafka

DELAY_S = 0.2
PARTITIONS = 4  # so that both executors hold some of the run requests
PASSES = [{"type": "must_say", "pattern": "refund"}]


class CountingModel:
    """Answers like a caller who wants a refund and an agent that gives one, each answer taking
    `DELAY_S`; records the peak number of requests in flight, overall and per suite (the suite is
    the model name's suffix: `agent-a`, `persona-a`)."""

    def __init__(self) -> None:
        self.llm = FakeLLM()
        self.llm.responder = self.respond
        self.now: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.executors_played = 0

    @staticmethod
    def respond(body: dict[str, Any]) -> Reply:
        if not str(body["model"]).startswith("persona"):
            return Reply(text="Your refund is on its way.", delay_s=DELAY_S)
        if any(m["role"] == "assistant" for m in body["messages"]):
            return Reply(text="Thanks, bye", tool_calls=(("end_conversation", {}),), delay_s=DELAY_S)
        return Reply(text="I want a refund", delay_s=DELAY_S)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        suite = str((await request.json())["model"]).rsplit("-", 1)[-1]
        for key in (suite, "all"):
            self.now[key] += 1
            self.peak[key] = max(self.peak[key], self.now[key])
        try:
            return await self.llm.handle(request)
        finally:
            for key in (suite, "all"):
                self.now[key] -= 1


def agent(tag: str) -> dict[str, Any]:
    return {"name": f"Bot {tag}", "system_prompt": "You help.", "model": f"fake:agent-{tag}", "tools": []}


def persona(tag: str) -> dict[str, Any]:
    return {"name": f"Caller {tag}", "identity_prompt": "You want a refund.", "model": f"fake:persona-{tag}"}


async def all_done(pool: Pool, suite_run_ids: list[UUID]) -> bool:
    async with connection(pool) as conn:
        done = await conn.fetchval(
            "SELECT count(*) FROM suite_runs WHERE id = ANY($1::uuid[]) AND done_at IS NOT NULL",
            suite_run_ids,
        )
    return int(done) == len(suite_run_ids)


async def outcomes(pool: Pool, suite_run_id: UUID) -> Counter[tuple[str, bool | None]]:
    async with connection(pool) as conn:
        rows = await conn.fetch(
            "SELECT status, pass_fail FROM eval_runs WHERE suite_run_id = $1", suite_run_id
        )
    return Counter((r["status"], r["pass_fail"]) for r in rows)


async def play_suites(
    pool: Pool,
    settings: Settings,
    kafka: KafkaBus,
    env_urls: tuple[str, str],
    suites: list[tuple[str, int, int]],
    *,
    cap: int,
) -> tuple[CountingModel, list[UUID]]:
    """Run one suite run per (tag, cases, parallelism) at once on two executor processes."""
    database_url, kafka_bootstrap = env_urls
    await kafka.create_topics(topic_specs(settings.topic_prefix, PARTITIONS, 1))
    company = await make_company(pool, balance_cents=100_000)
    model = CountingModel()
    async with chat_completions_server(model.handle) as base_url:
        providers = json.dumps({"fake": {"base_url": base_url, "timeout_s": 20, "max_retries": 0}})
        env = role_env(
            database_url,
            kafka_bootstrap,
            settings.topic_prefix,
            AGENT_EVAL_TOPIC_PARTITIONS=str(PARTITIONS),
            AGENT_EVAL_PROVIDERS=providers,
            AGENT_EVAL_MAX_INFLIGHT_RUNS_PER_COMPANY=str(cap),
        )
        # The trigger checks the models against the same provider registry the executors use.
        fake = ProviderConfig(base_url=base_url, timeout_s=20, max_retries=0)
        local = settings.model_copy(
            update={"max_inflight_runs_per_company": cap, "providers": {"fake": fake}}
        )
        with fleet(env, executors=2) as running:
            await ready(running)
            started = []
            for tag, cases, parallelism in suites:
                suite_id = await make_suite(
                    pool,
                    company.id,
                    cases=cases,
                    parallelism=parallelism,
                    agent=agent(tag),
                    persona=persona(tag),
                    success_criteria=PASSES,
                )
                started.append(await start_in_process(pool, local, company.id, suite_id, {"iterations": 2}))
            ids = [s.suite_run_id for s in started]
            try:
                await eventually(lambda: all_done(pool, ids), timeout_s=90, what="every suite run done")
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{running.tail()}") from exc
            model.executors_played = sum(child.find("run_claimed") is not None for child in running.executors)
    return model, ids


async def test_a_suites_parallelism_holds_across_two_executor_processes(
    pool: Pool, settings: Settings, kafka: KafkaBus, kafka_bootstrap: str, database_url: str
) -> None:
    model, [suite_run_id] = await play_suites(
        pool, settings, kafka, (database_url, kafka_bootstrap), [("a", 6, 3)], cap=50
    )
    assert model.peak["a"] == 3  # reached, never exceeded
    assert model.executors_played == 2
    assert await outcomes(pool, suite_run_id) == Counter({("completed", True): 12})


async def test_the_company_cap_and_each_suites_parallelism_hold_together(
    pool: Pool, settings: Settings, kafka: KafkaBus, kafka_bootstrap: str, database_url: str
) -> None:
    model, ids = await play_suites(
        pool, settings, kafka, (database_url, kafka_bootstrap), [("a", 4, 3), ("b", 4, 3)], cap=4
    )
    assert model.peak["all"] == 4  # the company's cap, though the suites would allow 6
    assert model.peak["a"] <= 3
    assert model.peak["b"] <= 3
    for suite_run_id in ids:
        assert await outcomes(pool, suite_run_id) == Counter({("completed", True): 8})


async def test_parallelism_one_plays_the_runs_one_at_a_time_in_position_order(
    pool: Pool, settings: Settings, kafka: KafkaBus, kafka_bootstrap: str, database_url: str
) -> None:
    model, [suite_run_id] = await play_suites(
        pool, settings, kafka, (database_url, kafka_bootstrap), [("a", 3, 1)], cap=50
    )
    assert model.peak["a"] == 1
    async with connection(pool) as conn:
        rows = await conn.fetch(
            "SELECT position, started_at FROM eval_runs WHERE suite_run_id = $1 ORDER BY position",
            suite_run_id,
        )
    starts = [r["started_at"] for r in rows]
    assert starts == sorted(starts)
