"""Whether a run's models can be served, decided before the run is written (DESIGN.md §6).

A trigger refuses a run whose agent, persona or judge model no configured provider can serve,
naming the model and the setting to set, rather than writing a run that retries for seconds and
ends `PROVIDER_UNAVAILABLE` (or scores an inconclusive judge). Pure: the providers come in as
data (`ProviderAccess`), read from the settings by the caller.

When a provider is configured: `scripted` always is (for the agent and the persona: it plays
rules and scripts, it cannot judge); `<provider>:<model>` is when `<provider>` is in the registry
(`openai` always is, AGENT_EVAL_PROVIDERS adds more) and, if it is the hosted OpenAI API
(`api.openai.com`, which refuses every call without a key), its key is set. Any other endpoint
counts as configured once listed: local and self-hosted servers (vLLM, Ollama, llama.cpp,
LiteLLM…) often take no key, so a missing key there is not a reason to refuse.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from schemas.assertions import CustomLlmJudge
from schemas.cases import Case
from service.domain.snapshot import Snapshot

Role = Literal["agent", "persona", "judge"]

SCRIPTED = "scripted"
KEYED_HOSTS = frozenset({"api.openai.com"})  # hosted endpoints that refuse calls without a key
PROVIDERS_SETTING = "AGENT_EVAL_PROVIDERS"
JUDGE_MODEL_SETTING = "AGENT_EVAL_JUDGE_MODEL"
DEFAULT_MODEL_SETTING = "AGENT_EVAL_DEFAULT_MODEL"


@dataclass(frozen=True)
class ProviderAccess:
    """What a trigger knows of one configured provider: its endpoint and whether its key is set."""

    base_url: str
    key_setting: str | None  # the variable its API key is read from
    has_key: bool


@dataclass(frozen=True)
class ModelUse:
    """A model a run will call, in a role; `setting` names the setting it came from, if any
    (a default), so the refusal can say which one to change."""

    role: Role
    model: str
    setting: str | None = None


@dataclass(frozen=True)
class DefaultModel:
    """The model for agents or personas that name none, and the setting it comes from."""

    model: str
    setting: str


def role_default(
    role_model: str, role_setting: str, *, role_setting_given: bool, default_model: str | None
) -> DefaultModel:
    """The default model of one role: its own setting (AGENT_EVAL_DEFAULT_AGENT_MODEL or
    AGENT_EVAL_DEFAULT_PERSONA_MODEL) when explicitly given, else AGENT_EVAL_DEFAULT_MODEL when
    set, else the role setting's built-in default."""
    if default_model is not None and not role_setting_given:
        return DefaultModel(default_model, DEFAULT_MODEL_SETTING)
    return DefaultModel(role_model, role_setting)


def run_models(
    case: Case,
    taken: Snapshot,
    *,
    agent_default: DefaultModel,
    persona_default: DefaultModel,
    judge_model: str,
) -> list[ModelUse]:
    """Every model a run of `case` (snapshotted as `taken`) calls: its agent's and persona's and
    one per judge assertion, each with the setting it came from when it is a default."""
    agent_named = taken.config.case.agent.model is not None
    persona_named = case.persona.model is not None
    uses = [
        ModelUse("agent", taken.agent_model, None if agent_named else agent_default.setting),
        ModelUse("persona", taken.persona_model, None if persona_named else persona_default.setting),
    ]
    for assertion in case.success_criteria:
        if isinstance(assertion, CustomLlmJudge):
            setting = None if assertion.model else JUDGE_MODEL_SETTING
            uses.append(ModelUse("judge", assertion.model or judge_model, setting))
    return uses


def needs_key(access: ProviderAccess) -> bool:
    """Whether calls to this provider fail without an API key (a hosted endpoint, see above)."""
    return urlsplit(access.base_url).hostname in KEYED_HOSTS


def model_problem(use: ModelUse, providers: Mapping[str, ProviderAccess]) -> str | None:
    """Why `use.model` cannot be served in its role, naming the setting to set; None when it can."""
    subject = f"{use.role} model `{use.model}`" + (f" (from {use.setting})" if use.setting else "")
    if use.model == SCRIPTED:
        if use.role != "judge":
            return None
        where = use.setting or "the assertion's `model`"
        return f"{subject} cannot judge: set {where} to `<provider>:<model>`"
    name, separator, _ = use.model.partition(":")
    if not separator:
        where = use.setting or "the `model`"
        return f"{subject} names no provider: set {where} to `<provider>:<model>` or `scripted`"
    access = providers.get(name)
    if access is None:
        return f"{subject} has no provider: add `{name}` to {PROVIDERS_SETTING}"
    if needs_key(access) and not access.has_key:
        if access.key_setting is None:
            return f"{subject} has no API key: give `{name}` an `api_key_env` in {PROVIDERS_SETTING}"
        return f"{subject} has no API key: set {access.key_setting}"
    return None


def unservable_models(uses: Iterable[ModelUse], providers: Mapping[str, ProviderAccess]) -> list[str]:
    """Why each model that cannot be served cannot be, once per distinct use, in the given order."""
    problems: dict[str, None] = {}
    for use in dict.fromkeys(uses):
        problem = model_problem(use, providers)
        if problem is not None:
            problems[problem] = None
    return list(problems)
