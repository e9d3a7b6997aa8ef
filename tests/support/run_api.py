"""Runs through the API in tests: scripted cases created over HTTP, triggers and cancels, the
in-process pipeline, and run states set with SQL where no executor is running."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from aiohttp import ClientResponse
from prometheus_client import REGISTRY

from service.bus.memory import InProcessBus
from service.core.settings import Settings
from service.db.postgres import Pool, connection
from tests.support.api import Client, Json, Tenant, created
from tests.support.pipeline import pipeline
from tests.support.scenarios import refund_case_body, scripted_agent, scripted_persona

RUNS = "/agent-eval/runs"
CASES = "/agent-eval/cases"
MUST_SAY_REFUND: Json = {"type": "must_say", "pattern": "refund"}


@dataclass(frozen=True)
class Answer:
    """A response read once: status, headers that matter here, and the JSON body."""

    status: int
    body: Json
    headers: dict[str, str]


async def answer(response: ClientResponse) -> Answer:
    body: Json = await response.json()
    return Answer(response.status, body, dict(response.headers))


def accepted(got: Answer, run_id: str, *, retry_after: str = "2") -> None:
    """Assert a 202 for the run: the latest run, where to poll, and when."""
    assert got.status == 202, got.body
    assert got.body["id"] == run_id
    assert got.body["queue_status"] != "done"
    assert (got.headers["Location"], got.headers["Retry-After"]) == (f"{RUNS}/{run_id}", retry_after)


def refused(got: Answer, status: int, code: str) -> None:
    """Assert an error answer with this status and machine code."""
    assert (got.status, got.body.get("code")) == (status, code), got.body


async def scripted_case(
    client: Client,
    tenant: Tenant,
    *,
    agent: dict[str, Any] | None = None,
    persona: dict[str, Any] | None = None,
    **case_fields: Any,
) -> Json:
    """A scripted agent, a scripted persona and a case of them, all created over HTTP."""
    made_agent = await created(client, tenant, "/agents", agent or scripted_agent())
    made_persona = await created(client, tenant, "/agent-eval/personas", persona or scripted_persona())
    body = refund_case_body(made_agent["id"], made_persona["id"], **case_fields)
    return await created(client, tenant, CASES, body)


def run_headers(tenant: Tenant, *, prefer: str | None = "wait=0", key: str | None = None) -> dict[str, str]:
    headers = tenant.headers()
    if prefer is not None:
        headers["Prefer"] = prefer
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


async def trigger(
    client: Client,
    tenant: Tenant,
    case_id: str,
    body: Json | None = None,
    *,
    prefer: str | None = "wait=0",
    key: str | None = None,
) -> Answer:
    """POST the case's run (by default `Prefer: wait=0`: answered at once)."""
    response = await client.post(
        f"{CASES}/{case_id}/run", json=body or {}, headers=run_headers(tenant, prefer=prefer, key=key)
    )
    return await answer(response)


async def queued_run(client: Client, tenant: Tenant, case_id: str, body: Json | None = None) -> Json:
    """A run created without anything to execute it: answered 202, still queued."""
    got = await trigger(client, tenant, case_id, body)
    assert got.status == 202, got.body
    return got.body


async def get_run(client: Client, tenant: Tenant, run_id: str, *, prefer: str | None = None) -> Answer:
    return await answer(await client.get(f"{RUNS}/{run_id}", headers=run_headers(tenant, prefer=prefer)))


async def cancel(
    client: Client, tenant: Tenant, run_id: str, *, prefer: str | None = None, key: str | None = None
) -> Answer:
    response = await client.post(
        f"{RUNS}/{run_id}/cancel", headers=run_headers(tenant, prefer=prefer, key=key)
    )
    return await answer(response)


@contextlib.asynccontextmanager
async def running_pipeline(settings: Settings, pool: Pool) -> AsyncIterator[None]:
    """Relay, executor, scorer and biller on an in-process bus until the block ends."""
    bus = InProcessBus()
    try:
        async with pipeline(settings, pool, bus):
            yield
    finally:
        await bus.stop()


async def count(pool: Pool, table: str) -> int:
    async with connection(pool) as conn:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))


async def mark_running(pool: Pool, run_id: str) -> None:
    """As if an executor had claimed the run (its lease held for a minute)."""
    await _update(
        pool,
        run_id,
        "status = 'running', queue_status = 'claimed', claimed_by = 'x', attempt = 1,"
        " started_at = now(), lease_expires_at = now() + interval '1 minute'",
    )


async def mark_over(pool: Pool, run_id: str) -> None:
    """As if the conversation had ended (max_turns) but scoring and billing had not."""
    await _update(
        pool,
        run_id,
        "status = 'completed', termination_reason = 'max_turns', queue_status = 'claimed',"
        " claimed_by = 'x', attempt = 1, started_at = now(), ended_at = now(), lease_expires_at = now()",
    )


async def mark_done(pool: Pool, run_id: str, *, notify: bool = True) -> None:
    """As if the biller had finished the run; NOTIFY its waiters as the biller does."""
    await mark_over(pool, run_id)
    await _update(pool, run_id, "queue_status = 'done', done_at = now()")
    if notify:
        async with connection(pool) as conn:
            await conn.execute("SELECT pg_notify('agent_eval_runs', $1)", run_id)


async def _update(pool: Pool, run_id: str, assignments: str) -> None:
    async with connection(pool) as conn:
        status = await conn.execute(f"UPDATE eval_runs SET {assignments} WHERE id = $1", UUID(run_id))
    assert status == "UPDATE 1", status


async def waiters_now() -> float:
    """How many requests the gateway holds waiting for runs (the process-wide gauge)."""
    return REGISTRY.get_sample_value("agent_eval_run_waiters") or 0.0


@contextlib.asynccontextmanager
async def held_key(
    pool: Pool, tenant: Tenant, *, fingerprint: bytes, resource_id: UUID
) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """An `Idempotency-Key` row `k-1` inserted by a transaction still open (as a first request
    still creating its run); yields its commit, and rolls it back at the end unless committed."""
    async with pool.acquire() as conn:
        held = conn.transaction()
        await held.start()
        committed = False

        async def commit() -> None:
            nonlocal committed
            await held.commit()
            committed = True

        try:
            await conn.execute(
                "INSERT INTO idempotency_keys (company_id, key, fingerprint, resource_type, resource_id)"
                " VALUES ($1, 'k-1', $2, 'eval_run', $3)",
                UUID(tenant.company_id),
                fingerprint,
                resource_id,
            )
            yield commit
        finally:
            if not committed:
                await held.rollback()


async def blocked_on_key(pool: Pool) -> bool:
    """Whether a request of this database waits on another's idempotency key row."""
    async with connection(pool) as conn:
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
            " AND query LIKE '%INSERT INTO idempotency_keys%'"
        )
    return bool(waiting)
