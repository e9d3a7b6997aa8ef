"""Suites in tests: a suite of scripted cases built over HTTP (each case passes or fails as
asked), and its runs read back."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from schemas.suite_runs import SuiteRunTrigger
from schemas.suites import SuiteFields
from service.core.ids import new_id
from service.core.settings import Settings
from service.db import suites
from service.db.postgres import Pool, transaction
from service.suites.triggers import Started, start_suite_run
from tests.support.api import Client, Json, Tenant, created
from tests.support.scenarios import make_case, refund_case_body, scripted_agent, scripted_persona

SUITES = "/agent-eval/suites"
PASSES: Json = {"type": "must_say", "pattern": "refund"}
FAILS: Json = {"type": "must_say", "pattern": "a phrase the agent never says"}


async def scripted_suite(
    client: Client, tenant: Tenant, outcomes: list[bool], *, parallelism: int = 1, **suite_fields: Any
) -> tuple[Json, list[Json]]:
    """A suite with one scripted case per entry of `outcomes` (True: its assertion passes)."""
    suite = await created(
        client, tenant, SUITES, {"name": "Regression", "parallelism": parallelism, **suite_fields}
    )
    agent = await created(client, tenant, "/agents", scripted_agent())
    persona = await created(client, tenant, "/agent-eval/personas", scripted_persona())
    cases = []
    for number, passes in enumerate(outcomes, start=1):
        body = refund_case_body(
            agent["id"],
            persona["id"],
            name=f"Case {number}",
            suite_id=suite["id"],
            success_criteria=[PASSES if passes else FAILS],
        )
        cases.append(await created(client, tenant, "/agent-eval/cases", body))
    return suite, cases


async def start(
    client: Client, tenant: Tenant, suite_id: str, body: Json | None = None, **headers: str
) -> tuple[int, Json]:
    response = await client.post(
        f"{SUITES}/{suite_id}/run", json=body or {}, headers={**tenant.headers(), **headers}
    )
    got: Json = await response.json()
    return response.status, got


async def suite_run(client: Client, tenant: Tenant, suite_id: str, suite_run_id: str) -> Json:
    response = await client.get(f"{SUITES}/{suite_id}/runs/{suite_run_id}", headers=tenant.headers())
    got: Json = await response.json()
    assert response.status == 200, got
    return got


async def make_suite(
    pool: Pool,
    company_id: UUID,
    *,
    cases: int,
    parallelism: int,
    agent: dict[str, Any] | None = None,
    persona: dict[str, Any] | None = None,
    **case_fields: Any,
) -> UUID:
    """A suite of `cases` cases of one agent and persona, written straight to the database."""
    suite_id = new_id()
    async with transaction(pool) as conn:
        await suites.insert_suite(
            conn, suite_id, company_id, SuiteFields(name="Suite", parallelism=parallelism)
        )
    for number in range(1, cases + 1):
        await make_case(
            pool,
            company_id,
            agent=agent,
            persona=persona,
            name=f"Case {number}",
            suite_id=str(suite_id),
            **case_fields,
        )
    return suite_id


async def start_in_process(
    pool: Pool, settings: Settings, company_id: UUID, suite_id: UUID, body: Json | None = None
) -> Started:
    """Start a suite run the way the gateway does (no HTTP)."""
    trigger = SuiteRunTrigger.model_validate(body or {})
    return await start_suite_run(
        pool, settings, company_id=company_id, suite_id=suite_id, body=trigger, key=None
    )
