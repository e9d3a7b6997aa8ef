"""The firing nodes of a flow: which tool a `tool_call` node calls and with what arguments, how
its answer routes the flow, and the mocked answers of `integration_call` nodes.

Arguments come from `args_template`: a literal (strings may name `{{metadata.key}}` from the
flow's metadata and `{{node_id.arg}}` from an earlier node's arguments) or
`{"ai_extract": "<what>"}`, read from the conversation — by the agent's model, or, with the
`scripted` model, the caller's last message. Routing is deterministic (reference §3.7): a hard
failure goes to `error_next_step_id`; otherwise the first `custom` branch whose JSONPath finds a
value equal to `equals`; otherwise `success_next_step_id` (or an integration's `next_step_id`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from jsonpath import JSONPathError
from jsonpath import compile as compile_jsonpath
from pydantic import JsonValue

from schemas.agents import Tool
from schemas.flows import IntegrationCallNode, ToolCallNode
from service.domain.flow_choice import json_answer
from service.domain.messages import ChatMessage
from service.domain.transcript import ToolCallRecord, TranscriptTurn

TOKEN = re.compile(r"\{\{\s*([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\s*\}\}")
PREVIEW_CHARS = 500
Arguments = dict[str, JsonValue]


@dataclass(frozen=True)
class Route:
    next_step_id: str | None
    outcome: str  # success | error | branch
    branch_id: str | None = None

    def as_dict(self) -> dict[str, JsonValue]:
        return {"next_step_id": self.next_step_id, "outcome": self.outcome, "branch_id": self.branch_id}


def node_tool(node: ToolCallNode, tools: Sequence[Tool]) -> Tool | None:
    """The agent's tool a node calls (by `id`, else by `name`), with the node's `config_override`."""
    tool = next((t for t in tools if t.id == node.tool_id), None) or next(
        (t for t in tools if t.name == node.tool_id), None
    )
    if tool is None or not node.config_override:
        return tool
    override = dict(node.config_override)
    update: dict[str, object] = {
        k: override[k] for k in ("url", "parameters", "output_schema") if k in override
    }
    return tool.model_copy(update=update)


def integration_tool_name(node: IntegrationCallNode) -> str:
    return f"{node.provider}_{node.action}"


@dataclass(frozen=True)
class Firing:
    """A node's call, ready to be answered: the call as recorded, the tool it reaches (None for
    an integration, or a tool the agent does not have), and where each argument came from."""

    call: ToolCallRecord
    tool: Tool | None
    sources: dict[str, JsonValue]

    def missing_tool(self) -> Arguments:
        """The answer when the node names a tool the agent does not have (a hard failure)."""
        error = f"the agent has no tool with id or name {self.call.name!r}"
        return {"tool_call_id": self.call.id, "name": self.call.name, "mocked": False, "error": error}


def prepare_firing(
    node: ToolCallNode | IntegrationCallNode,
    tools: Sequence[Tool],
    metadata: Mapping[str, JsonValue],
    transcript: Sequence[TranscriptTurn],
    extracted: Mapping[str, JsonValue],
) -> Firing:
    """The call a firing node makes, its arguments rendered from `args_template`."""
    args, sources = render_arguments(node.args_template, metadata, earlier_arguments(transcript), extracted)
    call_id = f"flow-{node.id}-{len(transcript) + 1}"
    if isinstance(node, IntegrationCallNode):
        return Firing(ToolCallRecord(call_id, integration_tool_name(node), args), None, sources)
    tool = node_tool(node, tools)
    return Firing(ToolCallRecord(call_id, tool.name if tool else node.tool_id, args), tool, sources)


def extraction_wanted(template: Mapping[str, JsonValue] | None) -> dict[str, str]:
    """The arguments to read from the conversation: name → what to extract."""
    wanted: dict[str, str] = {}
    for name, value in (template or {}).items():
        if isinstance(value, dict) and isinstance(value.get("ai_extract"), str):
            wanted[name] = str(value["ai_extract"])
    return wanted


def earlier_arguments(transcript: Sequence[TranscriptTurn]) -> dict[str, Arguments]:
    """Each fired node's arguments by node id (the latest firing wins)."""
    found: dict[str, Arguments] = {}
    for turn in transcript:
        event = turn.flow_event or {}
        args = event.get("args")
        if event.get("type") == "flow_tool_result" and isinstance(args, dict):
            found[str(event.get("step_id"))] = dict(args)
    return found


def render_arguments(
    template: Mapping[str, JsonValue] | None,
    metadata: Mapping[str, JsonValue],
    earlier: Mapping[str, Arguments],
    extracted: Mapping[str, JsonValue],
) -> tuple[Arguments, dict[str, JsonValue]]:
    """The arguments and where each came from (`literal` or `ai_extract`)."""
    args: Arguments = {}
    sources: dict[str, JsonValue] = {}
    for name, value in (template or {}).items():
        if isinstance(value, dict) and "ai_extract" in value:
            args[name], sources[name] = extracted.get(name), "ai_extract"
        else:
            args[name], sources[name] = _filled(value, metadata, earlier), "literal"
    return args, sources


def _filled(
    value: JsonValue, metadata: Mapping[str, JsonValue], earlier: Mapping[str, Arguments]
) -> JsonValue:
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        scope, key = match.group(1), match.group(2)
        source = metadata if scope == "metadata" else earlier.get(scope, {})
        found = source.get(key)
        return "" if found is None else found if isinstance(found, str) else json.dumps(found)

    return TOKEN.sub(replace, value)


def route(node: ToolCallNode | IntegrationCallNode, answer: Mapping[str, JsonValue]) -> Route:
    """Where the flow goes after the node's answer (a tool_result body)."""
    routes = node.transitions
    if "error" in answer:
        return Route(routes.error_next_step_id, "error")
    result = answer.get("result")
    for branch in routes.custom:
        if _branch_matches(branch.jsonpath, branch.equals, result):
            return Route(branch.next_step_id, "branch", branch.id)
    fallback = node.next_step_id if isinstance(node, IntegrationCallNode) else None
    return Route(routes.success_next_step_id or fallback, "success")


def _branch_matches(path: str, equals: JsonValue, result: JsonValue) -> bool:
    try:
        found = compile_jsonpath(path).findall(result)
    except JSONPathError:
        return False  # checked when the agent was saved; an old agent's bad path matches nothing
    return any(value == equals for value in found)


def result_event(
    node: ToolCallNode | IntegrationCallNode,
    firing: Firing,
    answer: Mapping[str, JsonValue],
    duration_ms: int,
) -> dict[str, JsonValue]:
    """The `flow_tool_result` payload (reference §3.2) plus the route the answer took."""
    error = answer.get("error")
    body = answer.get("result", answer.get("body"))
    preview = json.dumps(body, sort_keys=True)[:PREVIEW_CHARS] if body is not None else None
    integration = node if isinstance(node, IntegrationCallNode) else None
    return {
        "type": "flow_tool_result",
        "step_id": node.id,
        "kind": "integration" if integration else "tool",
        "status": "error" if error is not None else "success",
        "tool_name": firing.call.name,
        "tool_id": node.tool_id if isinstance(node, ToolCallNode) else None,
        "provider": integration.provider if integration else None,
        "action": integration.action if integration else None,
        "integration_id": integration.integration_id if integration else None,
        "args": dict(firing.call.arguments),
        "arg_sources": dict(firing.sources),
        "mocked": bool(answer.get("mocked")),
        "response_preview": preview,
        "error": error if isinstance(error, str) or error is None else json.dumps(error),
        "duration_ms": duration_ms,
        "route": route(node, answer).as_dict(),
    }


def integration_answer(node: IntegrationCallNode, args: Mapping[str, JsonValue], call_id: str) -> Arguments:
    """A mocked answer shaped like the provider action's result (no provider is ever called)."""
    result = _integration_result(node.provider, node.action, args)
    return {"tool_call_id": call_id, "name": integration_tool_name(node), "mocked": True, "result": result}


def _integration_result(provider: str, action: str, args: Mapping[str, JsonValue]) -> JsonValue:
    start = args.get("start") or args.get("start_time") or "2030-01-07T10:00:00Z"
    end = args.get("end") or args.get("end_time") or "2030-01-07T10:30:00Z"
    if provider == "gmail":
        if action.startswith(("list", "search")):
            return {"messages": [{"id": "msg-mock-1", "threadId": "thread-mock-1", "snippet": "…"}]}
        return {"id": "msg-mock-1", "threadId": "thread-mock-1", "labelIds": ["SENT"]}
    if action.startswith(("check", "find", "free", "availability")):
        return {"available": True, "slots": [{"start": start, "end": end}], "busy": []}
    if action.startswith(("list", "search", "get")):
        return {
            "items": [{"id": "evt-mock-1", "summary": args.get("summary", "Event"), "status": "confirmed"}]
        }
    if action.startswith(("delete", "cancel")):
        return {"deleted": True, "id": args.get("event_id", "evt-mock-1")}
    event: dict[str, JsonValue] = {
        "id": "evt-mock-1",
        "status": "confirmed",
        "summary": args.get("summary", "Appointment"),
        "start": {"dateTime": start},
        "end": {"dateTime": end},
        "htmlLink": "https://calendar.example/evt-mock-1",
    }
    return event


def scripted_extraction(wanted: Mapping[str, str], transcript: Sequence[TranscriptTurn]) -> Arguments:
    """The `scripted` model's extraction: the caller's last message, for every argument."""
    last = next((t.text for t in reversed(transcript) if t.role == "persona" and t.text), "")
    return {name: last for name in wanted}


def extraction_schema(wanted: Mapping[str, str]) -> dict[str, JsonValue]:
    properties: dict[str, JsonValue] = {
        name: {"type": ["string", "null"], "description": what} for name, what in wanted.items()
    }
    return {
        "type": "object",
        "properties": properties,
        "required": list(wanted),
        "additionalProperties": False,
    }


def extraction_messages(wanted: Mapping[str, str], transcript: Sequence[TranscriptTurn]) -> list[ChatMessage]:
    """What the agent's model is asked to fill a node's `ai_extract` arguments."""
    listed = "\n".join(f"- {name}: {what}" for name, what in wanted.items())
    said = "\n".join(
        f"{'Caller' if t.role == 'persona' else 'Agent'}: {t.text}"
        for t in transcript
        if t.role in ("persona", "agent") and t.text
    )
    keys = ", ".join(json.dumps(name) for name in wanted)
    system = (
        "Extract these values from the conversation below, as the caller gave them; use null for "
        f"a value the conversation does not contain.\n{listed}\n"
        f"Answer with a JSON object only, with exactly these keys (each a string or null): {keys}."
    )
    return [ChatMessage("system", system), ChatMessage("user", said or "(nothing said yet)")]


def read_extraction(text: str | None, wanted: Mapping[str, str]) -> Arguments:
    """The model's values for the wanted arguments (missing or unreadable ones are null)."""
    answer = json_answer(text)
    found = answer if isinstance(answer, dict) else {}
    return {name: found.get(name) for name in wanted}
