"""What a run records when triggered (DESIGN.md §4, §6): the agent merged from its overrides
(shallow, last layer wins), the exact prompts, and the models."""

from __future__ import annotations

from pydantic import JsonValue

from schemas.agents import AgentOverrides
from schemas.cases import Case
from schemas.runs import RunConfig
from service.domain.overrides import merge_agent
from service.domain.prompts import persona_prompt
from service.domain.snapshot import snapshot
from tests.support.case_models import (
    LOOKUP,
    REFUND,
    make_agent,
    make_case,
)


def overrides(**fields: JsonValue) -> AgentOverrides:
    return AgentOverrides.model_validate(fields)


def take(case: Case, run: AgentOverrides | None = None) -> tuple[RunConfig, str, str]:
    taken = snapshot(
        case, run, default_agent_model="openai:gpt-default", default_persona_model="openai:persona"
    )
    return taken.config, taken.agent_model, taken.persona_model


# --- merge_agent -----------------------------------------------------------------------------------


def test_without_overrides_the_agent_is_used_as_saved() -> None:
    agent = make_agent()

    assert merge_agent(agent) == agent
    assert merge_agent(agent, None, None) == agent


def test_an_override_replaces_only_the_keys_it_sends() -> None:
    merged = merge_agent(make_agent(), overrides(system_prompt="Be terse.", temperature=0.0))

    assert (merged.system_prompt, merged.temperature) == ("Be terse.", 0.0)
    assert (merged.name, merged.greeting_message, [t.name for t in merged.tools]) == (
        "Support",
        "Hi, Acme here.",
        ["lookup"],
    )


def test_the_last_layer_wins_and_earlier_layers_keep_their_other_keys() -> None:
    case_layer = overrides(system_prompt="Case prompt.", temperature=1.0)
    run_layer = overrides(system_prompt="Run prompt.")

    merged = merge_agent(make_agent(), case_layer, run_layer)

    assert merged.system_prompt == "Run prompt."
    assert merged.temperature == 1.0


def test_a_list_override_replaces_the_whole_list() -> None:
    merged = merge_agent(make_agent(), overrides(tools=[REFUND]))

    assert [tool.name for tool in merged.tools] == ["refund"]


def test_an_explicit_null_clears_a_field_while_an_omitted_key_keeps_it() -> None:
    assert merge_agent(make_agent(), overrides(greeting_message=None)).greeting_message is None
    assert merge_agent(make_agent(), overrides(name="Other")).greeting_message == "Hi, Acme here."


def test_merging_keeps_the_agent_identity_and_leaves_the_saved_agent_untouched() -> None:
    agent = make_agent()

    merged = merge_agent(agent, overrides(name="Renamed"))

    assert (merged.id, merged.company_id, merged.created_at) == (agent.id, agent.company_id, agent.created_at)
    assert agent.name == "Support"


# --- snapshot ---------------------------------------------------------------------------------------


def test_snapshot_embeds_the_agent_merged_from_case_then_run_overrides() -> None:
    case = make_case(agent_overrides={"system_prompt": "Case prompt.", "temperature": 1.5})

    config, _, _ = take(case, overrides(system_prompt="Run prompt."))

    assert config.case.agent.system_prompt == "Run prompt."
    assert config.case.agent.temperature == 1.5


def test_snapshot_records_the_exact_prompts_sent() -> None:
    case = make_case(agent_overrides={"system_prompt": "Case prompt."})

    config, _, _ = take(case)

    assert config.prompts.agent == "Case prompt."
    assert config.prompts.persona == persona_prompt(case.persona, case.scenario)
    assert config.prompts.persona is not None
    assert "You are Dana, an impatient customer." in config.prompts.persona
    assert "Your order A1 is a week late." in config.prompts.persona


def test_snapshot_keeps_the_rest_of_the_case_and_leaves_it_untouched() -> None:
    case = make_case(agent_overrides={"name": "Overridden"})

    config, _, _ = take(case)

    assert (config.case.id, config.case.scenario, config.case.max_turns) == (case.id, case.scenario, 8)
    assert config.case.persona == case.persona
    assert case.agent.name == "Support"


def test_models_default_when_neither_agent_nor_persona_names_one() -> None:
    _, agent_model, persona_model = take(make_case())

    assert (agent_model, persona_model) == ("openai:gpt-default", "openai:persona")


def test_models_named_by_the_agent_overrides_and_persona_are_used() -> None:
    case = make_case(
        agent={"model": "openai:gpt-4o"},
        persona={"model": "scripted", "script": ["Hi"]},
        agent_overrides={"model": "scripted"},
    )

    _, agent_model, persona_model = take(case, None)

    assert (agent_model, persona_model) == ("scripted", "scripted")


def test_a_run_override_can_change_the_agent_model() -> None:
    _, agent_model, _ = take(make_case(), overrides(model="openai:gpt-4o-mini"))

    assert agent_model == "openai:gpt-4o-mini"


def test_snapshot_survives_being_stored_as_json() -> None:
    config, _, _ = take(make_case(agent_overrides={"tools": [LOOKUP, REFUND]}), overrides(temperature=0.1))

    assert RunConfig.model_validate(config.model_dump(mode="json")) == config
