"""Runs as the API shows them: the stored row with its snapshot (the case as triggered, with the
merged agent and persona used) expanded, and the evaluation roll-up (null until done)."""

from __future__ import annotations

from schemas.agents import AgentOverrides
from schemas.evaluation import Evaluation
from schemas.runs import EvaluationView, Run, RunConfig
from service.db import runs
from service.domain.lifecycle import is_final


def run_view(run: runs.RunRow) -> Run:
    config = RunConfig.model_validate(run.config)
    return Run(
        id=run.id,
        company_id=run.company_id,
        mode="voice" if run.mode == "voice" else "text",
        case_id=run.case_id,
        case=config.case,
        suite_id=run.suite_id,
        suite_run_id=run.suite_run_id,
        agent_id=run.agent_id,
        persona_id=run.persona_id,
        status=run.status,
        queue_status=run.queue_status,
        termination_reason=run.termination_reason,
        agent_model=run.agent_model,
        persona_model=run.persona_model,
        created_at=run.created_at,
        started_at=run.started_at,
        ended_at=run.ended_at,
        duration_ms=run.duration_ms,
        cancel_requested_at=run.cancel_requested_at,
        score=run.score,
        pass_fail=run.pass_fail,
        evaluation=None if run.evaluation is None else Evaluation.model_validate(run.evaluation),
        agent_input_tokens=run.agent_input_tokens,
        agent_output_tokens=run.agent_output_tokens,
        persona_input_tokens=run.persona_input_tokens,
        persona_output_tokens=run.persona_output_tokens,
        judge_input_tokens=run.judge_input_tokens,
        judge_output_tokens=run.judge_output_tokens,
        agent_cost_cents=run.agent_cost_cents,
        persona_cost_cents=run.persona_cost_cents,
        judge_cost_cents=run.judge_cost_cents,
        total_cost_cents=run.total_cost_cents,
        uncollected_cents=run.uncollected_cents,
        error=run.error,
        error_code=run.error_code,
        agent_overrides=None
        if run.agent_overrides is None
        else AgentOverrides.model_validate(run.agent_overrides),
        labels=run.labels,
        prompts=config.prompts,
    )


def evaluation_view(run: runs.RunRow) -> EvaluationView:
    """`/evaluation`: score, pass/fail, inconclusive and results stay null until the run is done."""
    done = is_final(run.queue_status)
    evaluation = Evaluation.model_validate(run.evaluation) if done and run.evaluation is not None else None
    return EvaluationView(
        score=evaluation.score if evaluation else None,
        pass_fail=evaluation.pass_fail if evaluation else None,
        inconclusive=evaluation.inconclusive if evaluation else None,
        results=evaluation.results if evaluation else None,
        status=run.status,
        termination_reason=run.termination_reason,
        queue_status=run.queue_status,
    )
