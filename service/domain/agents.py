"""Checks on an agent beyond its types, run whenever one is saved or overridden.

Tool names are unique and not the system `end_call`; tool parameter and output schemas are
valid JSON Schema; URLs are HTTPS (plain HTTP only where private targets are allowed, i.e. in
tests and local development); models name a configured provider; scripted rules compile in RE2
and call tools the agent has; a flow's graph is well formed. An http agent has an endpoint (and
no other type has one) whose URL the outbound policy allows and whose headers use only its own
secrets; prompt and flow agents need a `system_prompt`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import JsonValue

from schemas.agents import SYSTEM_TOOL, AgentFields, AgentOverrides, FlowConfig, ScriptedRule, Tool
from schemas.endpoints import AgentEndpoint
from service.core.errors import FieldError, FlowInvalid
from service.core.networks import AllowedNetworks
from service.domain.endpoints import endpoint_problems
from service.domain.flows import FlowIssue, flow_issues
from service.domain.patterns import pattern_error


def model_problem(model: str | None, providers: frozenset[str]) -> str | None:
    """Why `model` cannot be used, or None: `scripted`, or `<provider>:<model>` of a known provider."""
    if model is None or model == "scripted":
        return None
    provider = model.split(":", 1)[0]
    if provider not in providers:
        return f"unknown provider {provider!r}; configured: {', '.join(sorted(providers)) or 'none'}"
    return None


def url_problem(url: str | None, *, allow_http: bool) -> str | None:
    if url is None or url.startswith("https://") or (allow_http and url.startswith("http://")):
        return None
    return "must be an https:// URL"


def schema_problem(schema: dict[str, JsonValue] | None, *, require_object: bool) -> str | None:
    """Why `schema` is not a usable JSON Schema (draft 2020-12), or None."""
    if schema is None:
        return None
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return f"not a valid JSON Schema: {exc.message}"
    if require_object and schema.get("type") != "object":
        return 'tool parameters must be an object schema ("type": "object")'
    return None


def tool_problems(tools: Sequence[Tool], *, allow_http: bool, at: str = "body.tools") -> Iterator[FieldError]:
    seen: set[str] = set()
    for index, tool in enumerate(tools):
        where = f"{at}.{index}"
        if tool.name == SYSTEM_TOOL:
            yield FieldError(f"{where}.name", f"{SYSTEM_TOOL!r} is the system tool every agent has")
        elif tool.name in seen:
            yield FieldError(f"{where}.name", f"tool name {tool.name!r} is used twice")
        seen.add(tool.name)
        checks = [
            ("url", url_problem(tool.effective_url(), allow_http=allow_http)),
            ("parameters", schema_problem(tool.effective_parameters(), require_object=True)),
            ("output_schema", schema_problem(tool.effective_output_schema(), require_object=False)),
        ]
        yield from (FieldError(f"{where}.{field}", problem) for field, problem in checks if problem)


def rule_problems(
    rules: Sequence[ScriptedRule], tool_names: set[str] | None, at: str = "body.rules"
) -> Iterator[FieldError]:
    for index, rule in enumerate(rules):
        problem = pattern_error(rule.when)
        if problem:
            yield FieldError(f"{at}.{index}.when", problem)
        if rule.call_tool and tool_names is not None and rule.call_tool.name not in tool_names:
            yield FieldError(f"{at}.{index}.call_tool.name", f"the agent has no tool {rule.call_tool.name!r}")


def check_flow(flow_config: FlowConfig | None) -> None:
    """Raise FlowInvalid listing every structural problem of the graph."""
    if flow_config is None:
        return
    issues: list[FlowIssue] = flow_issues(flow_config.nodes)
    if issues:
        raise FlowInvalid([issue.as_dict() for issue in issues])


def type_problems(agent: AgentFields, at: str = "body") -> Iterator[FieldError]:
    """Fields a whole agent of its type must have, or must not: an http agent's endpoint, the
    system prompt of the others (optional for an http agent, which has its own)."""
    if agent.type == "http" and agent.endpoint is None:
        yield FieldError(f"{at}.endpoint", "an http agent needs an endpoint", "missing")
    if agent.type != "http" and agent.endpoint is not None:
        yield FieldError(
            f"{at}.endpoint", f"only http agents have an endpoint (this is a {agent.type} agent)"
        )
    if agent.type != "http" and "system_prompt" not in agent.model_fields_set:
        yield FieldError(f"{at}.system_prompt", "Field required", "missing")


def agent_field_errors(
    agent: AgentFields | AgentOverrides,
    *,
    providers: frozenset[str],
    allow_http: bool,
    at: str = "body",
    agent_networks: AllowedNetworks | None = None,
) -> list[FieldError]:
    """Every problem of a whole agent, or of the fields an override sets, with its field path.
    An endpoint URL is checked against the outbound policy only when `agent_networks`
    (AGENT_EVAL_AGENT_ALLOWED_NETWORKS) is given; a run checks it again when it calls."""
    errors: list[FieldError] = list(type_problems(agent, at)) if isinstance(agent, AgentFields) else []
    tools = agent.tools
    if tools is not None:
        errors += tool_problems(tools, allow_http=allow_http, at=f"{at}.tools")
    problem = model_problem(agent.model, providers)
    if problem:
        errors.append(FieldError(f"{at}.model", problem))
    if agent.rules:
        names = None if tools is None else {tool.name for tool in tools}
        errors += rule_problems(agent.rules, names, at=f"{at}.rules")
    problem = url_problem(agent.webhook_url, allow_http=allow_http)
    if problem:
        errors.append(FieldError(f"{at}.webhook_url", problem))
    if agent.endpoint is not None:
        secrets = set(agent.endpoint.secrets) if isinstance(agent.endpoint, AgentEndpoint) else None
        errors += endpoint_problems(
            agent.endpoint,
            allow_private=allow_http,
            networks=agent_networks,
            secret_names=secrets,
            at=f"{at}.endpoint",
        )
    return errors
