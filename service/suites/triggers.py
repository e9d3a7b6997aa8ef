"""Starting a suite run (reference §2.3, DESIGN.md §3 Dispatch): one transaction writes the suite
run, `iterations` runs of every case (held, with its snapshot, position and `run.queued`), and the
idempotency key; right after, as many runs are released as the suite's `parallelism` and the
company's in-flight cap allow, and every run that ends releases the next. Refusals (400
`SUITE_EMPTY`, 402, 404, 422 for a case that cannot run, 422 `MODEL_NOT_CONFIGURED` naming every
model of the suite no provider serves) write nothing.

A re-run starts a new suite run of the same suite with the same overrides, iterations and
labels: every case, or only those with a run that did not pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from schemas.agents import AgentOverrides
from schemas.cases import Case
from schemas.runs import RunTrigger
from schemas.suite_runs import SuiteRunTrigger
from service.core.errors import (
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    LockTimeout,
    NothingToRerun,
    SuiteEmpty,
)
from service.core.ids import new_id
from service.core.settings import Settings
from service.db import cases, idempotency, runs, suite_runs, suites
from service.db.postgres import Connection, Pool, transaction
from service.db.run_creation import create_run
from service.domain.snapshot import Snapshot
from service.domain.statistics import Outcome
from service.runs.endings import fill_slots
from service.runs.funds import ensure_can_pay
from service.runs.suite_completion import outcome
from service.runs.triggers import KEY_WAIT_S, IdempotencyRequest, ensure_models_served, snapshot_run

SUITE_RUN = "suite_run"


@dataclass(frozen=True)
class Started:
    suite_run_id: UUID
    run_ids: list[UUID]
    created: bool  # False: an Idempotency-Key replay of an earlier request


@dataclass(frozen=True)
class Plan:
    """What a suite run runs: the cases, how often, and with which overrides and labels."""

    suite_id: UUID
    parallelism: int
    cases: Sequence[Case]
    iterations: int
    agent_overrides: AgentOverrides | None
    labels: dict[str, str]
    rerun_of: UUID | None = None


async def start_suite_run(
    pool: Pool,
    settings: Settings,
    *,
    company_id: UUID,
    suite_id: UUID,
    body: SuiteRunTrigger,
    key: IdempotencyRequest | None,
) -> Started:
    try:
        async with transaction(pool) as conn:
            if key is not None:
                stored = await idempotency.fetch_key(conn, company_id, key.key)
                if stored is not None:
                    return await _replayed(conn, stored, key)
            suite = await suites.get_suite(conn, company_id, suite_id)
            live = await cases.list_suite_cases(conn, company_id, suite_id)
            if not live:
                raise SuiteEmpty(f"Suite {suite_id} has no cases")
            plan = Plan(
                suite_id, suite.parallelism, live, body.iterations, body.agent_overrides, dict(body.labels)
            )
            started = await _create(conn, settings, company_id, plan, key)
    except LockTimeout as exc:
        raise IdempotencyKeyInUse("A request with this Idempotency-Key is still being processed") from exc
    if started.created:
        await fill_slots(pool, company_id, settings.max_inflight_runs_per_company, after_end=False)
    return started


async def rerun_suite_run(
    pool: Pool, settings: Settings, *, company_id: UUID, suite_id: UUID, suite_run_id: UUID, only: str
) -> Started:
    """A new suite run of the same cases (all, or those with a run that did not pass)."""
    async with transaction(pool) as conn:
        suite = await suites.get_suite(conn, company_id, suite_id)
        original = await suite_runs.get_suite_run(conn, company_id, suite_id, suite_run_id)
        members = await suite_runs.list_members(conn, suite_run_id)
        wanted = [m.case_id for m in members if m.case_id is not None]
        if only == "failed":
            wanted = [
                m.case_id for m in members if m.case_id is not None and outcome(m) is not Outcome.PASSED
            ]
        live = await cases.list_cases_by_ids(conn, company_id, list(dict.fromkeys(wanted)))
        if not live:
            raise NothingToRerun(f"No case of suite run {suite_run_id} needs to run again")
        overrides = (
            None
            if original.agent_overrides is None
            else AgentOverrides.model_validate(original.agent_overrides)
        )
        plan = Plan(
            suite_id,
            suite.parallelism,
            live,
            original.iterations,
            overrides,
            original.labels,
            rerun_of=original.id,
        )
        started = await _create(conn, settings, company_id, plan, None)
    await fill_slots(pool, company_id, settings.max_inflight_runs_per_company, after_end=False)
    return started


async def _create(
    conn: Connection, settings: Settings, company_id: UUID, plan: Plan, key: IdempotencyRequest | None
) -> Started:
    total = len(plan.cases) * plan.iterations
    await ensure_can_pay(conn, company_id, total, settings.min_run_balance_cents)
    trigger = RunTrigger(agent_overrides=plan.agent_overrides, labels=plan.labels)
    snapshots = {case.id: snapshot_run(case, trigger, settings) for case in plan.cases}  # 4xx before writing
    ensure_models_served([(case, snapshots[case.id]) for case in plan.cases], settings)
    suite_run_id = new_id()
    if key is not None:
        await idempotency.set_lock_timeout(conn, KEY_WAIT_S)
        stored = await idempotency.store_key(
            conn,
            company_id,
            key.key,
            fingerprint=key.fingerprint,
            resource_type=SUITE_RUN,
            resource_id=suite_run_id,
        )
        if stored is not None:  # a concurrent request stored the key first; nothing is written yet
            return await _replayed(conn, stored, key)
    await suite_runs.insert_suite_run(
        conn,
        suite_runs.NewSuiteRun(
            id=suite_run_id,
            company_id=company_id,
            suite_id=plan.suite_id,
            agent_overrides=None if plan.agent_overrides is None else plan.agent_overrides.changes(),
            labels=plan.labels,
            total_runs=total,
            parallelism=plan.parallelism,
            iterations=plan.iterations,
            rerun_of=plan.rerun_of,
        ),
    )
    run_ids = await _insert_runs(conn, company_id, suite_run_id, plan, snapshots)
    return Started(suite_run_id, run_ids, created=True)


async def _insert_runs(
    conn: Connection, company_id: UUID, suite_run_id: UUID, plan: Plan, snapshots: dict[UUID, Snapshot]
) -> list[UUID]:
    """Every run, held, iteration by iteration (all cases once, then again), in position order."""
    run_ids = []
    for position, (iteration, case) in enumerate(
        ((i, c) for i in range(1, plan.iterations + 1) for c in plan.cases), start=1
    ):
        taken = snapshots[case.id]
        run = await create_run(
            conn,
            runs.NewRun(
                id=new_id(),
                company_id=company_id,
                config=taken.config.model_dump(mode="json"),
                case_id=case.id,
                suite_id=plan.suite_id,
                suite_run_id=suite_run_id,
                agent_id=case.agent_id,
                persona_id=case.persona_id,
                agent_overrides=None if plan.agent_overrides is None else plan.agent_overrides.changes(),
                labels=plan.labels,
                released=False,
                position=position,
                agent_model=taken.agent_model,
                persona_model=taken.persona_model,
                iteration=iteration,
            ),
        )
        run_ids.append(run.id)
    return run_ids


async def _replayed(conn: Connection, stored: idempotency.StoredKey, key: IdempotencyRequest) -> Started:
    if stored.fingerprint != key.fingerprint or stored.resource_type != SUITE_RUN:
        raise IdempotencyKeyReused("This Idempotency-Key was used for a different request")
    members = await suite_runs.list_members(conn, stored.resource_id)
    return Started(stored.resource_id, [m.id for m in members], created=False)
