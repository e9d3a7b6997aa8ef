"""The scorer role: `run.completed` → evaluate the assertions (judge calls priced) → `run.scored`.

The event is only a trigger: the run row decides. A run already scored (a redelivered event, a
second scorer) is left alone and nothing is emitted twice. Judge calls happen outside any
transaction; the result is written with a guard (`scored_at IS NULL`) under the run's lock.
A run needing no judge is scored by the executor as its conversation ends (see
`consumers.executor.persistence`); its `run.completed` already says it is done and is skipped
unread.
"""

from __future__ import annotations

import asyncio
from uuid import UUID

from consumers.judge import Judge
from consumers.llm.openai_compat import providers_from_settings
from consumers.llm.providers import Providers
from consumers.role import BATCHED_FETCH, BuiltRole, Role, RoleContext
from schemas.assertions import CustomLlmJudge
from schemas.events import Event, Topic
from schemas.runs import RunConfig
from service.core.logging import get_logger
from service.core.settings import Settings
from service.db import results, runs, turns
from service.db.postgres import Pool, connection
from service.domain import pricing
from service.domain.lifecycle import SCORING_EVENTS, needs_scoring, settled_when_announced
from service.domain.scoring import evaluate

log = get_logger("consumers.scorer")


class Scorer:
    def __init__(self, pool: Pool, settings: Settings, judge: Judge) -> None:
        self._pool = pool
        self._settings = settings
        self._judge = judge

    async def handle(self, event: Event) -> None:
        # A run the executor settled says so in its own events: nothing to read, nothing to do.
        if event.type in SCORING_EVENTS and event.run_id is not None and not settled_when_announced(event):
            await self.score(event.run_id)

    async def score(self, run_id: UUID) -> None:
        async with connection(self._pool) as conn:
            run = await runs.fetch_run(conn, run_id)
            if run is None or not needs_scoring(run.status, run.scored_at is not None):
                return
            rows = await turns.list_turns(conn, run_id)
        case = RunConfig.model_validate(run.config).case
        transcript = turns.transcript_of(rows)
        judged = [(i, a) for i, a in enumerate(case.success_criteria) if isinstance(a, CustomLlmJudge)]
        verdicts = await asyncio.gather(*(self._judge.judge(a, transcript) for _, a in judged))
        judgements = {i: j for (i, _), j in zip(judged, verdicts, strict=True)}
        evaluation = evaluate(
            case.success_criteria,
            transcript,
            {i: j.result for i, j in judgements.items()},
            pass_threshold=case.pass_threshold,
            flow_agent=case.agent.type == "flow",
        )
        calls = [
            pricing.Call(j.model, c.input_tokens, c.output_tokens)
            for j in judgements.values()
            for c in j.calls
        ]
        usage = pricing.price_calls(self._settings.rate_card, "judge", calls)
        async with connection(self._pool) as conn:
            # One guarded statement writes the evaluation and `run.scored`: a second scorer's
            # statement waits on the row, then matches nothing.
            scored = await results.record_evaluation(
                conn,
                run_id,
                evaluation.model_dump(mode="json"),
                score=evaluation.score,
                pass_fail=evaluation.pass_fail,
                judge=usage,
            )
        if scored is None:
            return  # another scorer got there first
        log.info("run_scored", run_id=str(run_id), score=evaluation.score, pass_fail=evaluation.pass_fail)


def build(context: RoleContext) -> BuiltRole:
    providers = Providers(providers_from_settings(context.settings))
    judge = Judge(providers, context.settings.judge_model, context.settings.judge_attempts)
    scorer = Scorer(context.pool, context.settings, judge)
    return BuiltRole(handler=scorer.handle, close=providers.close)


ROLE = Role("scorer", (Topic.RUN_EVENTS,), SCORING_EVENTS, build, fetch=BATCHED_FETCH)
