"""A flow agent's graph: read and checked when the agent is saved (400 FLOW_INVALID with every
issue), read again when a run plays it.

Checks: node ids present and unique, every node valid for its type, exactly one start node,
every `next_step_id` (also `success_`/`error_` ones and custom branches') names a node, and
custom branches' JSONPath expressions and conversation nodes' scripted rules compile, and the
start node does not lead to itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from jsonpath import JSONPathError
from jsonpath import compile as compile_jsonpath
from pydantic import JsonValue, TypeAdapter, ValidationError

from schemas.flows import ConversationNode, FlowNode, IntegrationCallNode, StartNode, ToolCallNode
from service.core.errors import FlowUnreadable
from service.domain.patterns import pattern_error

NODE_TYPES = frozenset({"start", "conversation", "tool_call", "integration_call", "transfer", "end"})
_NODE: TypeAdapter[FlowNode] = TypeAdapter(FlowNode)


@dataclass(frozen=True)
class FlowIssue:
    node_id: str | None
    code: str
    message: str

    def as_dict(self) -> dict[str, str | None]:
        return {"node_id": self.node_id, "code": self.code, "message": self.message}


@dataclass(frozen=True)
class FlowGraph:
    """The nodes by id, in the order given, and the start node."""

    nodes: Mapping[str, FlowNode]
    start: StartNode
    metadata: Mapping[str, JsonValue]

    def node(self, node_id: str) -> FlowNode | None:
        return self.nodes.get(node_id)

    def global_nodes(self) -> list[ConversationNode]:
        return [n for n in self.nodes.values() if isinstance(n, ConversationNode) and n.is_global]


def read_flow(
    nodes: Sequence[Mapping[str, JsonValue]], metadata: Mapping[str, JsonValue] | None
) -> FlowGraph:
    """The graph of a flow agent; raises FlowUnreadable when it has issues."""
    issues = flow_issues(nodes)
    if issues:
        raise FlowUnreadable("; ".join(f"{i.node_id or 'flow'}: {i.message}" for i in issues))
    parsed = [_NODE.validate_python(dict(node)) for node in nodes]
    start = next(n for n in parsed if isinstance(n, StartNode))
    return FlowGraph({n.id: n for n in parsed}, start, dict(metadata or {}))


def flow_issues(nodes: Sequence[Mapping[str, JsonValue]]) -> list[FlowIssue]:
    """Every problem of the graph: node ids and shapes, exactly one start, resolvable next steps."""
    issues = list(_node_shape_issues(nodes))
    ids = [n["id"] for n in nodes if isinstance(n.get("id"), str)]
    issues += [
        FlowIssue(i, "duplicate_node_id", f"node id {i!r} is used more than once") for i in _dupes(ids)
    ]
    starts = [n for n in nodes if n.get("type") == "start"]
    if len(starts) != 1:
        issues.append(
            FlowIssue(None, "start_node_count", f"exactly one start node needed, found {len(starts)}")
        )
    known = set(ids)
    for node in nodes:
        node_id = node.get("id") if isinstance(node.get("id"), str) else None
        for target in _next_step_ids(node):
            if target not in known:
                message = f"next_step_id {target!r} does not name a node"
                issues.append(FlowIssue(str(node_id) if node_id else None, "unknown_next_step", message))
    return issues


def _node_shape_issues(nodes: Sequence[Mapping[str, JsonValue]]) -> Iterator[FlowIssue]:
    for index, node in enumerate(nodes):
        node_id = node.get("id")
        if not isinstance(node_id, str) or not node_id:
            yield FlowIssue(None, "missing_node_id", f"node {index} has no string `id`")
            continue
        if node.get("type") not in NODE_TYPES:
            kinds = ", ".join(sorted(NODE_TYPES))
            yield FlowIssue(node_id, "unknown_node_type", f"node type must be one of {kinds}")
            continue
        try:
            parsed = _NODE.validate_python(dict(node))
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                where = ".".join(str(part) for part in error["loc"][1:]) or "node"
                yield FlowIssue(node_id, "invalid_node", f"{where}: {error['msg']}")
            continue
        yield from _jsonpath_issues(parsed)
        yield from _rule_issues(parsed)
        if isinstance(parsed, StartNode) and parsed.next_step_id == parsed.id:
            yield FlowIssue(node_id, "start_loops", "the start node cannot lead to itself")


def _rule_issues(node: FlowNode) -> Iterator[FlowIssue]:
    """A conversation node's scripted rules compile (RE2), as the agent's own must."""
    if not isinstance(node, ConversationNode):
        return
    for index, rule in enumerate(node.rules or []):
        problem = pattern_error(rule.when)
        if problem:
            yield FlowIssue(node.id, "invalid_rule", f"rules.{index}.when: {problem}")


def _jsonpath_issues(node: FlowNode) -> Iterator[FlowIssue]:
    if not isinstance(node, ToolCallNode | IntegrationCallNode):
        return
    for branch in node.transitions.custom:
        try:
            compile_jsonpath(branch.jsonpath)
        except JSONPathError as exc:
            first_line = str(exc).splitlines()[0]
            yield FlowIssue(node.id, "invalid_jsonpath", f"branch {branch.id!r}: {first_line}")


def _dupes(ids: list[JsonValue]) -> list[str]:
    seen: set[str] = set()
    dupes: list[str] = []
    for node_id in ids:
        if isinstance(node_id, str) and node_id in seen and node_id not in dupes:
            dupes.append(node_id)
        if isinstance(node_id, str):
            seen.add(node_id)
    return dupes


def _next_step_ids(value: object) -> Iterator[str]:
    """Every `next_step_id`, `success_next_step_id`, `error_next_step_id` anywhere in a node."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key.endswith("next_step_id") and isinstance(item, str):
                yield item
            else:
                yield from _next_step_ids(item)
    elif isinstance(value, list):
        for item in value:
            yield from _next_step_ids(item)
