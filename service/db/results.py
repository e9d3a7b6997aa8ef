"""A finished conversation's results on its run: the evaluation (`run.scored`) and the bill
(`run.billed`, `run.done`), each written with its events in one statement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from pydantic import JsonValue

from service.db import claims, states
from service.db.postgres import Connection
from service.db.runs import DONE_CHANNEL, RunRow
from service.db.transitions import transition, transition_many, transition_sql
from service.domain.lifecycle import TRANSITIONS, Ending, Step, settled_events
from service.domain.pricing import Usage


@dataclass(frozen=True)
class BilledUsage:
    """Token totals by role and the run's bill, written when the run is finalised."""

    agent_input_tokens: int
    agent_output_tokens: int
    persona_input_tokens: int
    persona_output_tokens: int
    agent_cost_cents: int
    persona_cost_cents: int
    judge_cost_cents: int
    total_cost_cents: int
    uncollected_cents: int


_RECORD_EVALUATION = transition_sql(
    "evaluation = $2, score = $3, pass_fail = $4, judge_input_tokens = $5, judge_output_tokens = $6,"
    " judge_cost_microcents = $7, judge_rate_card_version = $8, scored_at = now(), updated_at = now()",
    f"scored_at IS NULL AND status IN {states.SCORED}",
    params=8,
)


def _bill_set(first: int) -> str:
    """The SET clause finalising a run with `BilledUsage` in `$first`..`$first+8`."""
    columns = [
        "agent_input_tokens", "agent_output_tokens", "persona_input_tokens", "persona_output_tokens",
        "agent_cost_cents", "persona_cost_cents", "judge_cost_cents", "total_cost_cents", "uncollected_cents",
    ]  # fmt: skip
    assigned = ", ".join(f"{column} = ${first + i}" for i, column in enumerate(columns))
    return f"{assigned}, queue_status = {states.DONE}, done_at = now(), updated_at = now()"


# Every statement that makes a run done also wakes its waiters (NOTIFY is delivered on commit).
_RECORD_BILL = transition_sql(_bill_set(2), f"queue_status <> {states.DONE}", params=10, notify=DONE_CHANNEL)
# The executor's shortcut: end the conversation ($2..$8), store its verdict ($9..$12) and its
# bill ($13..$21) in one statement, with every event carrying the final summary.
_SETTLE = transition_sql(
    f"{claims.FINISH_SET}, evaluation = $9, score = $10, pass_fail = $11,"
    f" scored_at = CASE WHEN $12::boolean THEN now() END, {_bill_set(13)}",
    claims.FENCED_RUNNING,
    params=21,
    notify=DONE_CHANNEL,
)


async def record_evaluation(
    conn: Connection,
    run_id: UUID,
    evaluation: dict[str, JsonValue],
    *,
    score: float | None,
    pass_fail: bool | None,
    judge: Usage,
) -> RunRow | None:
    """Store the evaluation of a completed run and announce `run.scored`; None if it was scored
    already (nothing changes, nothing is announced)."""
    args = [
        evaluation,
        score,
        pass_fail,
        judge.input_tokens,
        judge.output_tokens,
        judge.cost_microcents,
        judge.rate_card_version,
    ]
    return await transition(conn, _RECORD_EVALUATION, run_id, args, TRANSITIONS[Step.SCORED].events)


@dataclass(frozen=True)
class Verdict:
    """A completed run's evaluation (`service.domain.scoring.Evaluation` as stored)."""

    evaluation: dict[str, JsonValue]
    score: float | None
    pass_fail: bool | None


def _settle_args(
    lease: claims.Lease, ending: Ending, active_ms: int, verdict: Verdict | None, usage: BilledUsage
) -> list[object]:
    scoring = (
        [None, None, None, False]
        if verdict is None
        else [verdict.evaluation, verdict.score, verdict.pass_fail, True]
    )
    return [*claims.ending_args(lease, ending, active_ms), *scoring, *_bill_args(usage)]


@dataclass(frozen=True)
class Settling:
    """One run to settle with `settle_runs`: its lease and ending, the time it was owned, its
    verdict (completed runs; None for the others) and its bill."""

    lease: claims.Lease
    ending: Ending
    active_ms: int
    verdict: Verdict | None
    usage: BilledUsage


async def settle_runs(conn: Connection, runs: Sequence[Settling]) -> dict[UUID, RunRow]:
    """End each conversation under its lease, store its verdict and its bill, make it done and
    announce every step at once (`settled_events`), waking its waiters: in the given order (the
    order their rows and counts are locked in), in one round trip. The settled runs by id; a run
    whose lease was lost is absent. The caller charges the ledger in the same transaction."""
    return await transition_many(
        conn,
        _SETTLE,
        [
            (
                r.lease.run_id,
                _settle_args(r.lease, r.ending, r.active_ms, r.verdict, r.usage),
                settled_events(r.ending.status),
            )
            for r in runs
        ],
    )


async def record_bill(conn: Connection, run_id: UUID, usage: BilledUsage) -> RunRow | None:
    """Finalise the run (queue_status done) with its costs, announce `run.billed` and `run.done`,
    and wake its waiters; None if it was done already. `uncollected_cents` is what the balance
    will not cover: the caller charges the ledger in the same transaction."""
    return await transition(conn, _RECORD_BILL, run_id, _bill_args(usage), TRANSITIONS[Step.BILLED].events)


def _bill_args(usage: BilledUsage) -> list[object]:
    return [
        usage.agent_input_tokens,
        usage.agent_output_tokens,
        usage.persona_input_tokens,
        usage.persona_output_tokens,
        usage.agent_cost_cents,
        usage.persona_cost_cents,
        usage.judge_cost_cents,
        usage.total_cost_cents,
        usage.uncollected_cents,
    ]


_RECORD_UNCOLLECTED = "UPDATE eval_runs SET uncollected_cents = $2 WHERE id = $1"


async def record_uncollected(conn: Connection, run_id: UUID, cents: int) -> None:
    """The part of the run's cost its company's balance could not cover."""
    await conn.execute(_RECORD_UNCOLLECTED, run_id, cents)
