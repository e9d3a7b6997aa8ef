"""Checks on a case beyond its types: assertion patterns compile in RE2, judge models and agent
overrides are usable."""

from __future__ import annotations

from collections.abc import Sequence

from schemas.agents import AgentOverrides
from schemas.assertions import Assertion, CustomLlmJudge, MustNotSay, MustSay
from service.core.errors import FieldError
from service.core.networks import AllowedNetworks
from service.domain.agents import agent_field_errors, model_problem
from service.domain.patterns import pattern_error


def criteria_errors(
    criteria: Sequence[Assertion], *, providers: frozenset[str], at: str = "body.success_criteria"
) -> list[FieldError]:
    errors: list[FieldError] = []
    for index, assertion in enumerate(criteria):
        if isinstance(assertion, MustSay | MustNotSay):
            problem = pattern_error(assertion.pattern, dotall=True)
            if problem:
                errors.append(FieldError(f"{at}.{index}.pattern", problem))
        if isinstance(assertion, CustomLlmJudge):
            problem = model_problem(assertion.model, providers)
            if problem:
                errors.append(FieldError(f"{at}.{index}.model", problem))
    return errors


def case_field_errors(
    criteria: Sequence[Assertion] | None,
    overrides: AgentOverrides | None,
    *,
    providers: frozenset[str],
    allow_http: bool,
    agent_networks: AllowedNetworks | None = None,
) -> list[FieldError]:
    """Every problem of the assertions and agent overrides a case sets, with its field path (an
    overriding endpoint's URL checked against the outbound policy when `agent_networks` is given)."""
    errors = criteria_errors(criteria or [], providers=providers)
    if overrides is not None:
        errors += agent_field_errors(
            overrides,
            providers=providers,
            allow_http=allow_http,
            agent_networks=agent_networks,
            at="body.agent_overrides",
        )
    return errors
