"""Which models a trigger can run (service.domain.model_providers), and the default models of
agents and personas that name none (AGENT_EVAL_DEFAULT_MODEL and the per-role settings)."""

from __future__ import annotations

import pytest
from pydantic import JsonValue

from schemas.agents import AgentOverrides
from service.core.settings import Settings
from service.domain.model_providers import (
    DefaultModel,
    ModelUse,
    ProviderAccess,
    Role,
    needs_key,
    role_default,
    run_models,
    unservable_models,
)
from service.domain.model_providers import model_problem as problem_of
from service.domain.snapshot import snapshot
from service.runs.triggers import default_models
from tests.support.case_models import make_case

HOSTED = "https://api.openai.com/v1"
OPENAI_KEY = "AGENT_EVAL_OPENAI_API_KEY"


def openai(*, has_key: bool, base_url: str = HOSTED) -> ProviderAccess:
    return ProviderAccess(base_url=base_url, key_setting=OPENAI_KEY, has_key=has_key)


LOCAL = ProviderAccess(base_url="http://127.0.0.1:8000/v1", key_setting=None, has_key=False)
KEYLESS = {"openai": openai(has_key=False), "local": LOCAL}
KEYED = {"openai": openai(has_key=True), "local": LOCAL}


# --- one model -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["agent", "persona"])
def test_scripted_needs_no_provider_for_the_agent_and_the_persona(role: Role) -> None:
    assert problem_of(ModelUse(role, "scripted"), {}) is None


def test_scripted_cannot_judge_and_the_refusal_names_the_setting_to_change() -> None:
    from_setting = problem_of(ModelUse("judge", "scripted", "AGENT_EVAL_JUDGE_MODEL"), KEYED)
    own = problem_of(ModelUse("judge", "scripted"), KEYED)

    assert from_setting == (
        "judge model `scripted` (from AGENT_EVAL_JUDGE_MODEL) cannot judge: "
        "set AGENT_EVAL_JUDGE_MODEL to `<provider>:<model>`"
    )
    assert own == "judge model `scripted` cannot judge: set the assertion's `model` to `<provider>:<model>`"


def test_an_unknown_provider_is_named_with_the_setting_that_adds_it() -> None:
    assert problem_of(ModelUse("agent", "anthropic:claude-x"), KEYED) == (
        "agent model `anthropic:claude-x` has no provider: add `anthropic` to AGENT_EVAL_PROVIDERS"
    )


def test_hosted_openai_without_a_key_names_the_key_setting() -> None:
    use = ModelUse("persona", "openai:gpt-4o-mini", "AGENT_EVAL_DEFAULT_MODEL")

    assert problem_of(use, KEYLESS) == (
        "persona model `openai:gpt-4o-mini` (from AGENT_EVAL_DEFAULT_MODEL) has no API key: "
        "set AGENT_EVAL_OPENAI_API_KEY"
    )
    assert problem_of(use, KEYED) is None


def test_openai_pointed_at_a_local_server_needs_no_key() -> None:
    providers = {"openai": openai(has_key=False, base_url="http://127.0.0.1:11434/v1")}

    assert problem_of(ModelUse("agent", "openai:llama3"), providers) is None


def test_a_listed_custom_provider_is_configured_without_a_key() -> None:
    assert problem_of(ModelUse("agent", "local:llama3"), KEYLESS) is None


def test_a_custom_provider_at_the_hosted_api_needs_its_key() -> None:
    named = {"oai": ProviderAccess(HOSTED, "OAI_KEY", has_key=False)}
    unnamed = {"oai": ProviderAccess(HOSTED, None, has_key=False)}

    assert problem_of(ModelUse("agent", "oai:gpt-4o"), named) == (
        "agent model `oai:gpt-4o` has no API key: set OAI_KEY"
    )
    assert problem_of(ModelUse("agent", "oai:gpt-4o"), unnamed) == (
        "agent model `oai:gpt-4o` has no API key: give `oai` an `api_key_env` in AGENT_EVAL_PROVIDERS"
    )


def test_a_default_without_a_provider_prefix_names_the_setting_to_fix() -> None:
    use = ModelUse("agent", "gpt-4o", "AGENT_EVAL_DEFAULT_MODEL")

    assert problem_of(use, KEYED) == (
        "agent model `gpt-4o` (from AGENT_EVAL_DEFAULT_MODEL) names no provider: "
        "set AGENT_EVAL_DEFAULT_MODEL to `<provider>:<model>` or `scripted`"
    )


@pytest.mark.parametrize(
    ("base_url", "keyed"),
    [
        (HOSTED, True),
        ("https://api.openai.com", True),
        ("https://API.OPENAI.COM/v1", True),
        ("http://127.0.0.1:8000/v1", False),
        ("https://my-resource.openai.azure.com/openai/v1", False),
        ("https://api.openai.com.example.net/v1", False),
    ],
)
def test_only_the_hosted_openai_api_needs_a_key(base_url: str, keyed: bool) -> None:
    assert needs_key(ProviderAccess(base_url, OPENAI_KEY, has_key=False)) is keyed


# --- every model of a run (or of a suite's runs) ------------------------------------------------


def test_every_unservable_model_is_named_once_in_order() -> None:
    uses = [
        ModelUse("agent", "openai:gpt-4o-mini", "AGENT_EVAL_DEFAULT_AGENT_MODEL"),
        ModelUse("persona", "scripted"),
        ModelUse("judge", "nope:j"),
        ModelUse("agent", "openai:gpt-4o-mini", "AGENT_EVAL_DEFAULT_AGENT_MODEL"),  # another case
        ModelUse("judge", "nope:j"),
        ModelUse("agent", "local:llama3"),
    ]

    assert unservable_models(uses, KEYLESS) == [
        "agent model `openai:gpt-4o-mini` (from AGENT_EVAL_DEFAULT_AGENT_MODEL) has no API key: "
        "set AGENT_EVAL_OPENAI_API_KEY",
        "judge model `nope:j` has no provider: add `nope` to AGENT_EVAL_PROVIDERS",
    ]


def test_nothing_is_named_when_every_model_can_be_served() -> None:
    uses = [ModelUse("agent", "openai:gpt-4o"), ModelUse("persona", "scripted"), ModelUse("judge", "local:j")]

    assert unservable_models(uses, KEYED) == []
    assert unservable_models([], {}) == []


# --- the models of a run -------------------------------------------------------------------------

AGENT_DEFAULT = DefaultModel("openai:agent-default", "AGENT_EVAL_DEFAULT_AGENT_MODEL")
PERSONA_DEFAULT = DefaultModel("openai:persona-default", "AGENT_EVAL_DEFAULT_MODEL")


def models_of_run(
    run: AgentOverrides | None = None,
    *,
    agent: dict[str, JsonValue] | None = None,
    persona: dict[str, JsonValue] | None = None,
    **case_fields: JsonValue,
) -> list[ModelUse]:
    case = make_case(agent=agent, persona=persona, **case_fields)
    taken = snapshot(
        case, run, default_agent_model=AGENT_DEFAULT.model, default_persona_model=PERSONA_DEFAULT.model
    )
    return run_models(
        case, taken, agent_default=AGENT_DEFAULT, persona_default=PERSONA_DEFAULT, judge_model="openai:j"
    )


def test_defaults_are_named_with_the_setting_they_came_from() -> None:
    assert models_of_run() == [
        ModelUse("agent", "openai:agent-default", "AGENT_EVAL_DEFAULT_AGENT_MODEL"),
        ModelUse("persona", "openai:persona-default", "AGENT_EVAL_DEFAULT_MODEL"),
    ]


def test_models_the_agent_and_persona_name_come_from_no_setting() -> None:
    uses = models_of_run(agent={"model": "local:a"}, persona={"model": "scripted", "script": ["Hi"]})

    assert uses == [ModelUse("agent", "local:a"), ModelUse("persona", "scripted")]


def test_the_agent_model_is_the_one_the_overrides_leave() -> None:
    case_layer: dict[str, JsonValue] = {"model": "local:case"}

    assert models_of_run(agent_overrides=case_layer)[0] == ModelUse("agent", "local:case")
    run_layer = AgentOverrides.model_validate({"model": "local:run"})
    assert models_of_run(run_layer, agent_overrides=case_layer)[0] == ModelUse("agent", "local:run")


def test_each_judge_assertion_adds_its_model_or_the_judge_setting() -> None:
    criteria: list[JsonValue] = [
        {"type": "must_say", "pattern": "hi"},
        {"type": "custom_llm_judge", "rubric": "Polite."},
        {"type": "custom_llm_judge", "rubric": "Brief.", "model": "local:strict"},
    ]

    assert models_of_run(success_criteria=criteria)[2:] == [
        ModelUse("judge", "openai:j", "AGENT_EVAL_JUDGE_MODEL"),
        ModelUse("judge", "local:strict"),
    ]


# --- default models ------------------------------------------------------------------------------

AGENT_SETTING = "AGENT_EVAL_DEFAULT_AGENT_MODEL"


def test_the_role_setting_is_the_default_without_default_model() -> None:
    got = role_default("openai:gpt-4o-mini", AGENT_SETTING, role_setting_given=False, default_model=None)

    assert (got.model, got.setting) == ("openai:gpt-4o-mini", AGENT_SETTING)


def test_default_model_replaces_a_role_default_that_was_not_given() -> None:
    got = role_default("openai:gpt-4o-mini", AGENT_SETTING, role_setting_given=False, default_model="local:l")

    assert (got.model, got.setting) == ("local:l", "AGENT_EVAL_DEFAULT_MODEL")


def test_a_role_setting_given_explicitly_wins_over_default_model() -> None:
    got = role_default("local:big", AGENT_SETTING, role_setting_given=True, default_model="local:l")

    assert (got.model, got.setting) == ("local:big", AGENT_SETTING)


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DEFAULT_MODEL", "DEFAULT_AGENT_MODEL", "DEFAULT_PERSONA_MODEL"):
        monkeypatch.delenv(f"AGENT_EVAL_{name}", raising=False)


@pytest.mark.usefixtures("clean_environment")
def test_settings_default_model_is_the_default_of_both_roles() -> None:
    agent, persona = default_models(Settings(default_model="local:llama3"))

    assert (agent.model, persona.model) == ("local:llama3", "local:llama3")
    assert agent.setting == persona.setting == "AGENT_EVAL_DEFAULT_MODEL"


@pytest.mark.usefixtures("clean_environment")
def test_settings_without_default_model_keep_the_built_in_defaults() -> None:
    agent, persona = default_models(Settings())

    assert (agent.model, persona.model) == ("openai:gpt-4o-mini", "openai:gpt-4o-mini")
    assert (agent.setting, persona.setting) == (AGENT_SETTING, "AGENT_EVAL_DEFAULT_PERSONA_MODEL")


@pytest.mark.usefixtures("clean_environment")
def test_settings_role_defaults_set_in_the_environment_win_for_their_role(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENT_EVAL_DEFAULT_MODEL", "local:llama3")
    monkeypatch.setenv("AGENT_EVAL_DEFAULT_PERSONA_MODEL", "local:small")

    agent, persona = default_models(Settings())

    assert (agent.model, persona.model) == ("local:llama3", "local:small")
