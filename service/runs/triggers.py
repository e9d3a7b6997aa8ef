"""Creating a case run (DESIGN.md §3): one transaction writes the run (held), its snapshot, its
`run.queued` event and the idempotency key; right after, the run is released with its run
request as the company's in-flight cap allows. Early rejections (404, 402, 422, 400) store
nothing; among them 422 `MODEL_NOT_CONFIGURED` when the agent, persona or judge model has no
configured provider (`service.domain.model_providers` decides).

With an `Idempotency-Key`, a request seen before creates nothing: the same fingerprint replays
the stored run, another fingerprint is 422 `IDEMPOTENCY_KEY_REUSED`. A concurrent duplicate
waits on the key's row for the first request to commit, then replays; past 5 s it is 409
`IDEMPOTENCY_KEY_IN_USE`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from schemas.cases import Case
from schemas.runs import RunTrigger
from service.core.errors import (
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    LockTimeout,
    ModelNotConfigured,
    ModeNotSupported,
    NotFound,
    ValidationFailed,
)
from service.core.ids import new_id
from service.core.settings import Settings
from service.db import cases, idempotency, runs
from service.db.postgres import Connection, Pool, connection, transaction
from service.db.run_creation import create_run
from service.domain.agents import agent_field_errors, rule_problems
from service.domain.model_providers import (
    DefaultModel,
    ProviderAccess,
    role_default,
    run_models,
    unservable_models,
)
from service.domain.snapshot import Snapshot, snapshot
from service.runs.endings import fill_slots
from service.runs.funds import ensure_funded

KEY_WAIT_S = 5.0
CASE_RUN = "eval_run"


@dataclass(frozen=True)
class IdempotencyRequest:
    key: str
    fingerprint: bytes


@dataclass(frozen=True)
class Triggered:
    run_id: UUID
    created: bool  # False: an Idempotency-Key replay of an earlier request


async def trigger_case_run(
    pool: Pool,
    settings: Settings,
    *,
    company_id: UUID,
    case_id: UUID,
    body: RunTrigger,
    key: IdempotencyRequest | None,
) -> Triggered:
    """Create (or, for a repeated key, find) the run. A new run is created held
    and released right after, as the company's in-flight cap allows. Without a key the reads and
    the creation need no transaction: the run and its event are one statement."""
    if body.mode == "voice":
        raise ModeNotSupported("Only text runs exist; `mode: voice` is reserved")
    if key is None:
        async with connection(pool) as conn:
            triggered = await _create(
                conn, settings, company_id=company_id, case_id=case_id, body=body, key=None
            )
    else:
        try:
            async with transaction(pool) as conn:
                stored = await idempotency.fetch_key(conn, company_id, key.key)
                if stored is not None:
                    return Triggered(replayed(stored, key), created=False)
                triggered = await _create(
                    conn, settings, company_id=company_id, case_id=case_id, body=body, key=key
                )
        except LockTimeout as exc:
            raise IdempotencyKeyInUse("A request with this Idempotency-Key is still being processed") from exc
    if triggered.created:
        await fill_slots(pool, company_id, settings.max_inflight_runs_per_company, after_end=False)
    return triggered


def replayed(stored: idempotency.StoredKey, key: IdempotencyRequest) -> UUID:
    if stored.fingerprint != key.fingerprint or stored.resource_type != CASE_RUN:
        raise IdempotencyKeyReused("This Idempotency-Key was used for a different request")
    return stored.resource_id


async def _create(
    conn: Connection,
    settings: Settings,
    *,
    company_id: UUID,
    case_id: UUID,
    body: RunTrigger,
    key: IdempotencyRequest | None,
) -> Triggered:
    case, funds = await cases.get_case_for_run(conn, company_id, case_id)
    taken = planned_run(case, body, settings)
    ensure_funded(funds, 1, settings.min_run_balance_cents)
    run_id = new_id()
    if key is not None:
        await idempotency.set_lock_timeout(conn, KEY_WAIT_S)
        stored = await idempotency.store_key(
            conn, company_id, key.key, fingerprint=key.fingerprint, resource_type=CASE_RUN, resource_id=run_id
        )
        if stored is not None:  # a concurrent request stored the key first; nothing is written yet
            return Triggered(replayed(stored, key), created=False)
    run = await create_run(conn, _new_run(run_id, company_id, case, body, taken))
    return Triggered(run.id, created=True)


def planned_run(case: Case, body: RunTrigger, settings: Settings) -> Snapshot:
    """The run's snapshot, or the 4xx that refuses it (deleted agent, bad overrides, a
    model no provider serves)."""
    taken = snapshot_run(case, body, settings)
    ensure_models_served([(case, taken)], settings)
    return taken


def snapshot_run(case: Case, body: RunTrigger, settings: Settings) -> Snapshot:
    """The run's snapshot, or the 4xx that refuses it (deleted agent, bad overrides)."""
    if case.agent.deleted_at is not None:
        raise NotFound(f"Agent {case.agent_id} of case {case.id} was deleted")
    if body.agent_overrides is not None:
        errors = agent_field_errors(
            body.agent_overrides,
            providers=settings.provider_names(),
            allow_http=settings.webhook_allow_private,
            agent_networks=settings.agent_networks(),
            at="body.agent_overrides",
        )
        if errors:
            raise ValidationFailed(fields=errors)
    agent_default, persona_default = default_models(settings)
    taken = snapshot(
        case,
        body.agent_overrides,
        default_agent_model=agent_default.model,
        default_persona_model=persona_default.model,
    )
    agent = taken.config.case.agent
    problems = list(
        rule_problems(agent.rules or [], {t.name for t in agent.tools}, at="body.agent_overrides.rules")
    )
    if problems:
        raise ValidationFailed(fields=problems)
    return taken


def default_models(settings: Settings) -> tuple[DefaultModel, DefaultModel]:
    """The models of agents and of personas that name none (AGENT_EVAL_DEFAULT_MODEL applies to a
    role whose own setting was not given)."""
    given = settings.model_fields_set
    agent = role_default(
        settings.default_agent_model,
        "AGENT_EVAL_DEFAULT_AGENT_MODEL",
        role_setting_given="default_agent_model" in given,
        default_model=settings.default_model,
    )
    persona = role_default(
        settings.default_persona_model,
        "AGENT_EVAL_DEFAULT_PERSONA_MODEL",
        role_setting_given="default_persona_model" in given,
        default_model=settings.default_model,
    )
    return agent, persona


def ensure_models_served(planned: Sequence[tuple[Case, Snapshot]], settings: Settings) -> None:
    """Raise 422 `MODEL_NOT_CONFIGURED` naming every model of these runs no provider can serve
    (an http agent is called at its endpoint: its side needs no model provider)."""
    agent_default, persona_default = default_models(settings)
    uses = [
        use
        for case, taken in planned
        for use in run_models(
            case,
            taken,
            agent_default=agent_default,
            persona_default=persona_default,
            judge_model=settings.judge_model,
        )
        if not (use.role == "agent" and taken.config.case.agent.type == "http")
    ]
    problems = unservable_models(uses, provider_access(settings))
    if problems:
        raise ModelNotConfigured("Cannot run: " + "; ".join(problems))


def provider_access(settings: Settings) -> dict[str, ProviderAccess]:
    """Each configured provider as the model check sees it (an empty key counts as none)."""
    return {
        name: ProviderAccess(config.base_url, config.api_key_env, bool(settings.provider_api_key(config)))
        for name, config in settings.provider_registry().items()
    }


def _new_run(run_id: UUID, company_id: UUID, case: Case, body: RunTrigger, taken: Snapshot) -> runs.NewRun:
    return runs.NewRun(
        id=run_id,
        company_id=company_id,
        config=taken.config.model_dump(mode="json"),
        case_id=case.id,
        suite_id=case.suite_id,
        agent_id=case.agent_id,
        persona_id=case.persona_id,
        agent_overrides=None if body.agent_overrides is None else body.agent_overrides.changes(),
        labels=dict(body.labels),
        released=False,
        agent_model=taken.agent_model,
        persona_model=taken.persona_model,
    )
